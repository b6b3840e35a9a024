"""C{python -m clinvk} runs the C{clinvk} command."""

from clinvk.cli import main

main()
