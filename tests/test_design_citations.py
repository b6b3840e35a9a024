"""
The design the code relies on is in the repository: every citation of a
documentation page in the comments and strings of C{clinvk/} and C{tests/}
names a page that exists and, after C{#}, a label that page defines, and
nothing cites the specification the design was first written from, which is
not in the repository (see C{docs/design-notes.md}, "Citing the design in
the code").
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests._docs import DOCS, ROOT

# A citation: a page's path from the repository root, and optionally an
# anchor.  Paths hold no spaces, so a citation is never split across lines.
CITATION = re.compile(r"(?<![\w/.-])(?P<page>docs/(?:[\w.-]+/)*[\w.-]+\.md)(?:#(?P<label>[\w-]+))?")

# An explicit MyST target, the only kind of anchor a citation may use:
# heading anchors change whenever a heading is reworded.
LABEL = re.compile(r"^\((?P<label>[\w-]+)\)=\s*$", re.M)

# The pages of the external specification, named without their extension
# here so that searching the tree for them finds only real citations.
_SPEC_PAGES = (
    "api-rest",
    "api-openai",
    "api-anthropic",
    "backends",
    "sessions",
    "middleware",
    "config",
    "errors",
    "behaviours",
)
_EXTENSION = r"\.md"

# What cites the external specification.  A page name is fine as part of
# an in-repository path (docs/backends.md), hence the look-behind.
OUTSIDE_REFERENCES = (
    (
        re.compile(r"(?<![\w/.-])(?:" + "|".join(map(re.escape, _SPEC_PAGES)) + r")" + _EXTENSION + r"\b"),
        "a page of the external specification",
    ),
    (re.compile(r"\b" + "decisions".upper() + r"\b"), "the external decisions page"),
    (re.compile("shared" + "/spec"), "the external specification's directory"),
    (re.compile(r"\bthe spec\b", re.I), "the external specification"),
    (re.compile("\N{SECTION SIGN}"), "a section sign"),
    (re.compile(r"(?<![\w#/-])D[1-9][0-9]?\b"), "a decision by number alone (cite its label)"),
)

# The target of a Markdown link, such as "(security.md#threat-model)".
MARKDOWN_LINK = re.compile(r"\]\([^)\s]*\)")

# Where citations are looked for; this module names the forbidden forms in
# its own strings and unit tests, and is left out.
SOURCES = (ROOT / "clinvk", ROOT / "tests")
THIS_MODULE = Path(__file__).resolve()


def prose(source: str) -> Iterator[tuple[int, str]]:
    """
    The comments and string literals of Python C{source}, with the line
    each starts on: where citations live, as opposed to names in the code.
    """
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            yield token.start[0], token.string


def labels(page: Path) -> set[str]:
    """The explicit labels a documentation page defines."""
    return {match.group("label") for match in LABEL.finditer(page.read_text("utf-8"))}


def citation_problems(name: str, source: str, root: Path = ROOT) -> list[str]:
    """
    The citations in the prose of C{source} (the file C{name}) whose page
    does not exist under C{root}, or whose label that page does not define.
    """
    problems = []
    known: dict[Path, set[str]] = {}
    for line, text in prose(source):
        for match in CITATION.finditer(text):
            page = root / match.group("page")
            label = match.group("label")
            where = f"{name}:{line}: {match.group(0)}"
            if not page.is_file():
                problems.append(f"{where}: no such page")
            elif label is not None:
                if page not in known:
                    known[page] = labels(page)
                if label not in known[page]:
                    problems.append(f"{where}: the page defines no label {label!r}")
    return problems


def outside_references(name: str, texts: Iterable[tuple[int, str]]) -> list[str]:
    """The references of C{texts} (the file C{name}) to the external specification."""
    problems = []
    for line, text in texts:
        for pattern, what in OUTSIDE_REFERENCES:
            for match in pattern.finditer(text):
                problems.append(f"{name}:{line}: {match.group(0)!r} cites {what}")
    return problems


def python_sources() -> list[Path]:
    """The Python files of C{clinvk/} and C{tests/}, this module excepted."""
    return sorted(path for place in SOURCES for path in place.rglob("*.py") if path.resolve() != THIS_MODULE)


def doc_pages() -> list[Path]:
    """The Markdown pages of the documentation."""
    skipped = (DOCS / "_build", DOCS / "examples")
    return sorted(path for path in DOCS.rglob("*.md") if not any(path.is_relative_to(s) for s in skipped))


class SourceCitationTests(SynchronousTestCase):
    """The tree as it is in this checkout cites only what it holds."""

    def test_citations_resolve(self) -> None:
        """Every cited page exists, and every cited label is defined by its page."""
        problems = []
        for path in python_sources():
            problems += citation_problems(str(path.relative_to(ROOT)), path.read_text("utf-8"))
        self.assertEqual(problems, [])

    def test_design_is_cited(self) -> None:
        """
        The check above has something to check: the code does cite the
        design reference by label.
        """
        cited = 0
        for path in (ROOT / "clinvk").rglob("*.py"):
            for _, text in prose(path.read_text("utf-8")):
                cited += sum(1 for match in CITATION.finditer(text) if match.group("label"))
        self.assertGreater(cited, 100)

    def test_no_outside_references(self) -> None:
        """No comment or string of the code or the tests cites the external specification."""
        problems = []
        for path in python_sources():
            problems += outside_references(str(path.relative_to(ROOT)), prose(path.read_text("utf-8")))
        self.assertEqual(problems, [])

    def test_docs_cite_no_outside_pages(self) -> None:
        """
        No documentation page names the external specification's pages or
        directory.  (The pages speak of the decisions by number, D1 to D9,
        so only the page names count here.)
        """
        problems = []
        for page in doc_pages():
            # Link targets are pages of these docs, which the -W build checks.
            lines = (
                (number, MARKDOWN_LINK.sub("]", line))
                for number, line in enumerate(page.read_text("utf-8").splitlines(), start=1)
            )
            found = outside_references(str(page.relative_to(ROOT)), lines)
            problems += [problem for problem in found if "decision by number" not in problem]
        self.assertEqual(problems, [])


class CheckerTests(SynchronousTestCase):
    """The checks find what they are meant to find."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        design = self.root / "docs" / "design"
        design.mkdir(parents=True)
        (design / "page.md").write_text("(known-label)=\n## A heading\n\n(other)=\n## Another\n", "utf-8")

    def test_prose_only(self) -> None:
        """Comments and strings are read; names in the code are not."""
        source = 'spec = 1  # a comment\nx = "a string"\n'
        self.assertEqual(list(prose(source)), [(1, "# a comment"), (2, '"a string"')])

    def test_labels(self) -> None:
        """Explicit targets are labels; heading text is not."""
        self.assertEqual(labels(self.root / "docs" / "design" / "page.md"), {"known-label", "other"})

    def test_good_citations(self) -> None:
        """A page alone, and a page with one of its labels, are fine."""
        source = '"""See docs/design/page.md and docs/design/page.md#known-label."""\n'
        self.assertEqual(citation_problems("m.py", source, self.root), [])

    def test_missing_page(self) -> None:
        """A citation of a page that does not exist is reported."""
        source = "# see docs/design/gone.md#known-label\n"
        self.assertEqual(
            citation_problems("m.py", source, self.root),
            ["m.py:1: docs/design/gone.md#known-label: no such page"],
        )

    def test_missing_label(self) -> None:
        """A citation of a label its page does not define is reported, heading anchors included."""
        source = '"""\nSee docs/design/page.md#a-heading.\n"""\n'
        self.assertEqual(
            citation_problems("m.py", source, self.root),
            ["m.py:1: docs/design/page.md#a-heading: the page defines no label 'a-heading'"],
        )

    def test_outside_references(self) -> None:
        """Each form of citation of the external specification is reported."""
        texts = [
            (1, "(" + "api-rest" + ".md 1.4)"),
            (2, "(" + "decisions".upper() + " D6)"),
            (3, "in ../shared" + "/spec/"),
            (4, "as the Spec says"),
            (5, "(backends" + ".md \N{SECTION SIGN}6.3)"),
            (6, "the checks of D4"),
        ]
        found = outside_references("m.py", texts)
        self.assertEqual(
            [problem.split(":")[1] for problem in found], ["1", "2", "2", "3", "4", "5", "5", "6"]
        )

    def test_in_repository_pages_are_fine(self) -> None:
        """Pages of this repository, and decision labels, are not outside references."""
        texts = [(1, "docs/backends.md#cli-quirks, docs/design/decisions.md#d6-no-orphans, ProcessSpec")]
        self.assertEqual(outside_references("m.py", texts), [])
