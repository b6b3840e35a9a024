"""
The real-CLI suite: clinvk driving the real C{claude}, C{codex} and
C{gemini}, pinned from npm, against a model server on 127.0.0.1
(C{tox -e realcli}; docs/backends.md#real-cli-suite).
"""
