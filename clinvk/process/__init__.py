"""
Running child processes: their output, their process groups, their end.
"""
