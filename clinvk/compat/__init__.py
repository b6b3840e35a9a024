# -*- test-case-name: tests.compat -*-
"""
Translating the OpenAI and Anthropic request shapes into one CLI run, and
the run back into their answers (api-openai.md, api-anthropic.md).  Nothing
here knows about HTTP; the web families call it.
"""
