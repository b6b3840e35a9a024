# -*- test-case-name: tests.runs -*-
"""
Running one backend CLI for one request: pre-flight, a run slot, the
process, its events as a stream, and the clean-up after an ephemeral run.
The backends say what each CLI is; this layer runs them.
"""
