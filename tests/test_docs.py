"""
The documentation's rules, checked without Sphinx:

  - pages show commands and programs only through C{literalinclude} of real
    files under C{docs/examples/}, never in inline code blocks; the one
    exception is the quickstart's install and test commands, which must be
    README's first two C{sh} blocks word for word;
  - every file under C{docs/examples/} is named (by its path relative to
    C{docs/examples/}) in a test module, the mechanical proxy for "a test
    runs it";
  - every other C{sh} block of the README is contained verbatim in a file
    that a test or CI runs (under C{docs/examples/} or C{.ci/}), and every
    C{python} block of the README in a file under C{docs/examples/};
  - the YAML, JSON and TOML files C{docs/configuration.md} shows as the
    same settings load, with clinvk's own loader, into the same
    configuration;
  - the configuration reference (C{docs/_ext/clinvk_config_reference.py})
    documents every key of the configuration schema.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from attrs import evolve

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk.config import BACKEND_NAMES, ENVIRONMENT_OVERRIDES, config_schema, load_config
from tests._docs import (
    CODE_DIRECTIVES,
    CONFIGURATION,
    DOCS,
    EXAMPLES,
    QUICKSTART,
    README,
    ROOT,
    Fence,
    fences,
    section,
)

TESTS = ROOT / "tests"

# Languages of commands and programs: shown only through literalinclude.
PROGRAM_LANGUAGES = frozenset(
    {
        "sh",
        "bash",
        "zsh",
        "shell",
        "shell-session",
        "console",
        "python",
        "python3",
        "py",
        "py3",
        "pycon",
        "ipython",
    }
)

# Where a README command may live so that a test or CI runs it.
RUN_PLACES = (EXAMPLES, ROOT / ".ci")

_RST_DIRECTIVE = re.compile(r"^\s*\.\. (?P<name>[\w-]+)::\s*(?P<argument>.*)$", re.M)


def rst_directives(fence: Fence) -> Iterator[tuple[str, str]]:
    """The (name, argument) of the RST directives inside an C{{eval-rst}} block."""
    if fence.directive == "eval-rst":
        for match in _RST_DIRECTIVE.finditer(fence.body):
            yield match.group("name"), match.group("argument").strip()


def readme_sh_blocks(readme: str) -> list[str]:
    """The bodies of README's C{sh} blocks, in order (as C{.ci/run} reads them)."""
    return readme_blocks(readme, "sh")


def readme_blocks(readme: str, language: str) -> list[str]:
    """The bodies of README's blocks of C{language}, in order."""
    return [fence.body for fence in fences(readme) if fence.info == language]


def inline_program_problems(page: str, text: str, allowed: Iterable[str] = ()) -> list[str]:
    """
    The inline blocks of C{text} (the page C{page}) that show commands or
    programs, or that name no language at all; blocks whose body is one of
    C{allowed} are fine.
    """
    allowed = set(allowed)
    problems = []
    for fence in fences(text):
        if fence.directive is None and not fence.info:
            problems.append(f"{page}:{fence.line}: a code block without a language (use text for output)")
        elif fence.language in PROGRAM_LANGUAGES and fence.body not in allowed:
            problems.append(
                f"{page}:{fence.line}: inline {fence.language} block; "
                "put it in a file under docs/examples/ run by a test, and literalinclude it"
            )
        for name, argument in rst_directives(fence):
            language = argument.split()[0].lower() if argument else ""
            if name in CODE_DIRECTIVES and language in PROGRAM_LANGUAGES:
                problems.append(f"{page}:{fence.line}: inline {language} code-block in eval-rst")
    return problems


def include_problems(page: Path, text: str, docs: Path = DOCS, examples: Path = EXAMPLES) -> list[str]:
    """
    The C{literalinclude}s of C{text} that name a missing file or one
    outside C{examples}, and the C{include}s that name a missing file.
    """
    problems = []
    for fence in fences(text):
        included = [(fence.directive, fence.argument), *rst_directives(fence)]
        for name, argument in included:
            if name not in ("literalinclude", "include") or not argument:
                continue
            target = (docs / argument.lstrip("/")) if argument.startswith("/") else (page.parent / argument)
            target = target.resolve()
            where = f"{page.relative_to(docs)}:{fence.line}"
            if not target.is_file():
                problems.append(f"{where}: {name} of a missing file {argument}")
            elif name == "literalinclude" and not target.is_relative_to(examples.resolve()):
                problems.append(f"{where}: literalinclude of {argument}, outside docs/examples/")
    return problems


def example_files(examples: Path = EXAMPLES) -> list[str]:
    """The files under C{examples}, as paths relative to it."""
    return sorted(
        path.relative_to(examples).as_posix()
        for path in examples.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def unnamed_examples(examples: Iterable[str], test_sources: Iterable[str]) -> list[str]:
    """The C{examples} that no text of C{test_sources} names."""
    texts = list(test_sources)
    return [example for example in examples if not any(example in text for text in texts)]


def test_module_sources(tests: Path = TESTS) -> list[str]:
    """The text of every test module but this one."""
    this = Path(__file__).resolve()
    return [
        path.read_text("utf-8")
        for path in sorted(tests.rglob("*.py"))
        if path.resolve() != this and "__pycache__" not in path.parts
    ]


def run_place_texts(places: Iterable[Path] = RUN_PLACES) -> dict[str, str]:
    """The text of every file under C{places}, by path."""
    texts = {}
    for place in places:
        if not place.is_dir():
            continue
        for path in sorted(place.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                try:
                    texts[str(path.relative_to(ROOT))] = path.read_text("utf-8")
                except UnicodeDecodeError:
                    continue
    return texts


def docs_pages(docs: Path = DOCS) -> list[Path]:
    """The Markdown pages of C{docs}, without the build output and the examples."""
    skipped = {docs / "_build", docs / "examples"}
    return sorted(
        path for path in docs.rglob("*.md") if not any(path.is_relative_to(place) for place in skipped)
    )


def load_config_reference() -> ModuleType:
    """The configuration reference extension, imported from C{docs/_ext} without Sphinx."""
    name = "clinvk_config_reference"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while being defined.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def setting_keys(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of a non-object property of C{schema} (walked here, not by the extension)."""
    keys = []
    for name, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            keys.extend(setting_keys(sub, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


class DocsRulesTests(SynchronousTestCase):
    """The documentation as it is in this checkout follows the rules."""

    def test_no_inline_programs(self) -> None:
        """
        No page shows a command or program in an inline block, except the
        quickstart's copies of README's install and test commands.
        """
        install_and_test = readme_sh_blocks(README.read_text("utf-8"))[:2]
        problems = []
        for page in docs_pages():
            allowed = install_and_test if page == QUICKSTART else []
            problems += inline_program_problems(str(page.relative_to(DOCS)), page.read_text("utf-8"), allowed)
        self.assertEqual(problems, [])

    def test_includes_exist(self) -> None:
        """Every literalinclude names a file under docs/examples/; every include, a file."""
        problems = []
        for page in docs_pages():
            problems += include_problems(page, page.read_text("utf-8"))
        self.assertEqual(problems, [])

    def test_examples_named_by_tests(self) -> None:
        """Every file under docs/examples/ is named by a test module."""
        self.assertEqual(unnamed_examples(example_files(), test_module_sources()), [])

    def test_readme_commands_are_run(self) -> None:
        """
        Every C{sh} block of the README after the first two is contained
        verbatim in a file under docs/examples/ or .ci/.
        """
        texts = run_place_texts()
        missing = [
            f"README sh block {number}, starting {block.splitlines()[0]!r}"
            for number, block in enumerate(readme_sh_blocks(README.read_text("utf-8")), start=1)
            if number > 2 and not any(block.strip() in text for text in texts.values())
        ]
        self.assertEqual(missing, [], "not contained verbatim in any file under docs/examples/ or .ci/")

    def test_readme_programs_are_run(self) -> None:
        """Every C{python} block of the README is contained verbatim in a file under docs/examples/."""
        texts = run_place_texts((EXAMPLES,))
        blocks = readme_blocks(README.read_text("utf-8"), "python")
        self.assertNotEqual(
            blocks, [], "README shows no Python program any more: is this check still needed?"
        )
        missing = [
            f"README python block {number}, starting {block.splitlines()[0]!r}"
            for number, block in enumerate(blocks, start=1)
            if not any(block.strip() in text for text in texts.values())
        ]
        self.assertEqual(missing, [], "not contained verbatim in any file under docs/examples/")

    def test_configuration_formats(self) -> None:
        """
        The YAML, JSON and TOML files that docs/configuration.md shows as
        the same settings load, with clinvk's own loader and each from a
        file named for its format, into the same configuration, and it
        holds the settings they show.
        """
        shown = [
            fence
            for fence in fences(section(CONFIGURATION.read_text("utf-8"), "Where clinvk reads it from"))
            if fence.language in ("yaml", "json", "toml")
        ]
        self.assertEqual([fence.language for fence in shown], ["yaml", "json", "toml"])
        loaded = []
        for fence in shown:
            path = FilePath(self.mktemp() + f".{fence.language}")
            path.setContent(fence.body.encode("utf-8"))
            loaded.append(evolve(load_config(path.path, {}), source=None))
        self.assertEqual(loaded[1:], loaded[:1] * 2)
        [config, *_] = loaded
        self.assertEqual(
            (config.server.port, config.server.trusted_proxies, config.backends.get("claude").model),
            (9000, ("10.0.0.0/8",), "sonnet"),
        )

    def test_quickstart_install_and_test(self) -> None:
        """
        The quickstart's C{sh} blocks are README's install and test
        commands, in that order, word for word.
        """
        readme = readme_sh_blocks(README.read_text("utf-8"))
        self.assertEqual(len(readme) >= 2, True, "README lost its install or test command")
        quickstart = [fence.body for fence in fences(QUICKSTART.read_text("utf-8")) if fence.info == "sh"]
        self.assertEqual(quickstart, readme[:2])


class CheckerTests(SynchronousTestCase):
    """The checks above find what they look for."""

    def test_fences(self) -> None:
        """Fences of backticks and tildes, longer fences, and info strings."""
        text = "intro\n```sh\necho hi\n```\n~~~~python\nprint(1)\n```\n~~~~\n````{note}\ntext\n````\n"
        found = list(fences(text))
        self.assertEqual(
            [(f.info, f.body, f.line) for f in found],
            [("sh", "echo hi\n", 2), ("python", "print(1)\n```\n", 5), ("{note}", "text\n", 9)],
        )

    def test_inline_program(self) -> None:
        """Shell and Python blocks are problems; YAML, JSON and text are not."""
        text = "```bash\nls\n```\n```yaml\na: 1\n```\n```text\nout\n```\n```pycon\n>>> 1\n```\n"
        problems = inline_program_problems("page.md", text)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("page.md:1: inline bash block", problems[0])
        self.assertIn("page.md:10: inline pycon block", problems[1])

    def test_bare_block(self) -> None:
        """A block without a language is a problem: it could hide a command."""
        self.assertEqual(
            inline_program_problems("p.md", "```\ncurl x\n```\n"),
            ["p.md:1: a code block without a language (use text for output)"],
        )

    def test_code_directive(self) -> None:
        """A C{{code-block} python} directive is an inline program too."""
        problems = inline_program_problems("p.md", "```{code-block} python\n:linenos:\nprint(1)\n```\n")
        self.assertEqual(len(problems), 1, problems)

    def test_nested(self) -> None:
        """A block inside an admonition is found, with its line."""
        text = "# T\n\n````{note}\nSee:\n```sh\nrm -rf /\n```\n````\n"
        self.assertEqual(
            inline_program_problems("p.md", text),
            [
                "p.md:5: inline sh block; put it in a file under docs/examples/ run by a test, "
                "and literalinclude it"
            ],
        )

    def test_eval_rst(self) -> None:
        """An RST code-block inside C{{eval-rst}} is found."""
        text = "```{eval-rst}\n.. code-block:: bash\n\n   ls\n```\n"
        self.assertEqual(len(inline_program_problems("p.md", text)), 1)

    def test_allowed(self) -> None:
        """A block whose body is allowed (the quickstart's README copies) is fine."""
        text = "```sh\npip install .\n```\n"
        self.assertEqual(inline_program_problems("p.md", text, ["pip install .\n"]), [])
        self.assertEqual(len(inline_program_problems("p.md", text, ["pip install -e .\n"])), 1)

    def test_literalinclude_targets(self) -> None:
        """A missing file, or one outside docs/examples/, is a problem; relative and absolute paths work."""
        docs = Path(self.mktemp())
        (docs / "examples" / "a").mkdir(parents=True)
        (docs / "examples" / "a" / "x.sh").write_text("ls\n")
        (docs / "conf.py").write_text("")
        page = docs / "page.md"
        text = (
            "```{literalinclude} examples/a/x.sh\n```\n"
            "```{literalinclude} /examples/a/x.sh\n```\n"
            "```{literalinclude} examples/a/gone.sh\n```\n"
            "```{literalinclude} conf.py\n```\n"
            "```{include} ../missing.rst\n```\n"
        )
        self.assertEqual(
            include_problems(page, text, docs, docs / "examples"),
            [
                "page.md:5: literalinclude of a missing file examples/a/gone.sh",
                "page.md:7: literalinclude of conf.py, outside docs/examples/",
                "page.md:9: include of a missing file ../missing.rst",
            ],
        )

    def test_unnamed_examples(self) -> None:
        """An example is named when a test's text contains its relative path."""
        self.assertEqual(
            unnamed_examples(["a/x.sh", "a/y.py"], ['EXAMPLE = "a/x.sh"', "y.py"]),
            ["a/y.py"],
        )

    def test_readme_blocks(self) -> None:
        """README's sh blocks are found in order; other languages are not."""
        readme = "# R\n```sh\none\n```\n```python\nx\n```\n```sh\ntwo\nlines\n```\n"
        self.assertEqual(readme_sh_blocks(readme), ["one\n", "two\nlines\n"])
        self.assertEqual(readme_blocks(readme, "python"), ["x\n"])

    def test_section(self) -> None:
        """A section runs from its heading to the next of the same level, or to the end."""
        page = "# P\n## A\na\n### A.1\nb\n## B\nc\n"
        self.assertEqual(section(page, "A"), "a\n### A.1\nb\n")
        self.assertEqual(section(page, "B"), "c\n")
        self.assertRaises(ValueError, section, page, "C")


class ConfigReferenceTests(SynchronousTestCase):
    """The configuration reference the docs build from the schema."""

    def setUp(self) -> None:
        self.extension = load_config_reference()
        self.schema = config_schema()

    def test_every_key(self) -> None:
        """Every setting of the schema is documented, once."""
        documented = self.extension.documented_keys(self.extension.reference(self.schema))
        self.assertEqual(sorted(documented), sorted(setting_keys(self.schema)))
        self.assertEqual(len(documented), len(set(documented)))
        self.assertIn("backends.gemini.extra_flags", documented)
        self.assertIn("server.max_request_body_bytes", documented)

    def test_sections(self) -> None:
        """One section for the top-level keys, then one per top-level object, in schema order."""
        sections = self.extension.reference(self.schema)
        objects = [key for key, sub in self.schema["properties"].items() if "properties" in sub]
        self.assertEqual([section.key for section in sections], ["", *objects])

    def test_per_backend(self) -> None:
        """The backends are documented once, as C{backends.<name>.*}, for each name."""
        (backends,) = [s for s in self.extension.reference(self.schema) if s.key == "backends"]
        self.assertEqual(backends.names, BACKEND_NAMES)
        self.assertEqual(backends.settings[0].key, "backends.<name>.model")
        self.assertEqual(
            backends.settings[0].concrete_keys(),
            ["backends.claude.model", "backends.codex.model", "backends.gemini.model"],
        )

    def test_values(self) -> None:
        """Types and defaults read the way they are written in YAML."""
        settings = {
            setting.key: setting
            for section in self.extension.reference(self.schema)
            for setting in section.settings
        }
        port = settings["server.port"]
        self.assertEqual((port.type, port.default), ("integer", "8080 (also for 0 or less)"))
        self.assertEqual(settings["server.host"].default, "127.0.0.1 (also when empty)")
        flags = settings["backends.<name>.extra_flags"]
        self.assertEqual((flags.type, flags.default), ("list of strings", "[]"))
        self.assertEqual(settings["backends.<name>.model"].default, '""')
        self.assertEqual(settings["unified_flags.dry_run"].default, "false")
        self.assertEqual(
            settings["server.port"].description,
            self.schema["properties"]["server"]["properties"]["port"]["description"],
        )

    def test_differing_sections(self) -> None:
        """Objects that differ are documented key by key, not as a per-name map."""
        schema = {
            "properties": {
                "pair": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
                        "b": {"type": "object", "properties": {"y": {"type": "string", "enum": ["p", "q"]}}},
                    },
                }
            }
        }
        (section,) = self.extension.reference(schema)
        self.assertEqual(section.names, ())
        self.assertEqual([s.key for s in section.settings], ["pair.a.x", "pair.b.y"])
        self.assertEqual(section.settings[1].description, "Allowed values: p, q.")

    def test_unknown_keyword(self) -> None:
        """A schema keyword the reference cannot show fails instead of being left out."""
        schema = {"properties": {"name": {"type": "string", "pattern": "^a"}}}
        with self.assertRaises(self.extension.UnsupportedSchema) as raised:
            self.extension.reference(schema)
        self.assertEqual(str(raised.exception), "name: cannot document pattern")

    def test_environment(self) -> None:
        """Every overriding variable is in the table, with its dotted key."""
        rows = self.extension.environment_overrides(ENVIRONMENT_OVERRIDES)
        self.assertEqual([variable for variable, _ in rows], list(ENVIRONMENT_OVERRIDES))
        self.assertIn(("CLINVK_CLAUDE_MODEL", "backends.claude.model"), rows)
