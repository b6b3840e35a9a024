# -*- test-case-name: tests.compat -*-
"""
Translating the OpenAI and Anthropic request shapes into one CLI run, and
the run back into their answers (docs/design/openai-api.md#openai-api,
docs/design/anthropic-api.md#anthropic-api).  Nothing here knows about HTTP; the
web families call it.
"""
