"""
The backend CLIs clinvk drives: C{claude}, C{codex} and C{gemini}.
"""
