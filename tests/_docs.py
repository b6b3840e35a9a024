"""
Where the documentation lies in the checkout, and a reader of its MyST
Markdown pages: their fenced blocks and their sections.  Shared by the
documentation's rules (C{tests.test_docs}) and the tests that run what
the pages show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
README = ROOT / "README.md"
QUICKSTART = DOCS / "quickstart.md"
CONFIGURATION = DOCS / "configuration.md"

# Directives that show code given inline: C{{code-block} python}.
CODE_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "code-cell"})

# Directives whose content is not Markdown, so not searched for nested blocks.
OPAQUE_DIRECTIVES = CODE_DIRECTIVES | frozenset(
    {"literalinclude", "include", "raw", "math", "toctree", "eval-rst", "csv-table"}
)

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^}]+)\}\s*(?P<argument>.*)$")


@dataclass(frozen=True)
class Fence:
    """
    One fenced block of a Markdown page.

    @ivar info: The text after the opening fence (C{"sh"}, C{"{note}"}).
    @ivar body: The lines between the fences, each ending in a newline.
    @ivar line: The 1-based line of the opening fence in its page.
    """

    info: str
    body: str
    line: int

    @property
    def directive(self) -> str | None:
        """The MyST directive's name, or C{None} for a plain code block."""
        match = _DIRECTIVE.match(self.info.strip())
        return match.group("name").strip() if match else None

    @property
    def argument(self) -> str:
        """The directive's argument (a path, a language), or C{""}."""
        match = _DIRECTIVE.match(self.info.strip())
        return match.group("argument").strip() if match else ""

    @property
    def language(self) -> str:
        """
        The language of the code the block shows: its info word, or the
        argument of a code directive; C{""} for none.
        """
        if self.directive is None:
            words = self.info.split()
            return words[0].lower() if words else ""
        if self.directive in CODE_DIRECTIVES:
            words = self.argument.split()
            return words[0].lower() if words else ""
        return ""


def fences(text: str, first_line: int = 1) -> Iterator[Fence]:
    """
    Every fenced block of the MyST Markdown C{text}, including those nested
    in a directive whose content is Markdown (C{{note}}, C{{admonition}}).
    """
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index].rstrip("\n"))
        if opening is None or (opening.group("fence")[0] == "`" and "`" in opening.group("info")):
            index += 1
            continue
        fence = opening.group("fence")
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end].rstrip("\n")):
            end += 1
        block = Fence(
            info=opening.group("info").strip(), body="".join(lines[index + 1 : end]), line=first_line + index
        )
        yield block
        if block.directive is not None and block.directive not in OPAQUE_DIRECTIVES:
            yield from fences(block.body, first_line + index + 1)
        index = end + 1


def section(page: str, heading: str) -> str:
    """The text of the C{## heading} section of C{page}, up to the next such heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    if match is None:
        raise ValueError(f"no section {heading!r}")
    return match.group(1)
