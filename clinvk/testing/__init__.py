"""
Fakes for testing clinvk and programs that embed it: a process reactor
that spawns nothing, and fake backend CLIs.
"""
