"""
Tests for the flag mapping of docs/design/cli-runs.md#flag-mapping (every row,
for every backend) and the extra-flag allow-list of
docs/design/cli-runs.md#extra-flags.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.flags import check_extra_flags
from tests.backends.helpers import options

BACKENDS = build_backends()


def argv(
    backend: str, *, streaming: bool = False, raw: dict[str, Any] | None = None, **request: Any
) -> list[str]:
    """The command line of a request, without the executable."""
    return BACKENDS[backend].command(
        "/bin/" + backend, options(backend, raw, streaming=streaming, **request), ""
    )[1:]


# Each row: the request that selects it, then the flags each backend gets
# (None: the row maps to nothing for that backend).
ROWS: list[tuple[str, dict[str, Any], dict[str, list[str] | None]]] = [
    (
        "approval auto",
        {"approval_mode": "auto"},
        {
            "claude": ["--permission-mode", "acceptEdits"],
            "codex": ["--ask-for-approval", "on-request"],
            "gemini": ["--approval-mode", "auto_edit"],
        },
    ),
    (
        "approval none",
        {"approval_mode": "none"},
        {
            "claude": ["--permission-mode", "dontAsk"],
            "codex": ["--ask-for-approval", "never"],
            "gemini": ["--yolo"],
        },
    ),
    (
        "approval always",
        {"approval_mode": "always"},
        {
            "claude": ["--permission-mode", "default"],
            "codex": ["--ask-for-approval", "untrusted"],
            "gemini": ["--approval-mode", "default"],
        },
    ),
    (
        "sandbox read-only",
        {"sandbox_mode": "read-only"},
        {"claude": None, "codex": ["--sandbox", "read-only"], "gemini": ["--sandbox"]},
    ),
    (
        "sandbox workspace",
        {"sandbox_mode": "workspace"},
        {"claude": None, "codex": ["--sandbox", "workspace-write"], "gemini": ["--sandbox"]},
    ),
    (
        "sandbox full",
        {"sandbox_mode": "full"},
        {"claude": None, "codex": ["--sandbox", "danger-full-access"], "gemini": None},
    ),
    ("verbose", {"verbose": True}, {"claude": ["--verbose"], "codex": None, "gemini": ["--debug"]}),
    ("dry run", {"dry_run": True}, {"claude": None, "codex": ["--sandbox", "read-only"], "gemini": None}),
    ("max_tokens", {"max_tokens": 500}, {"claude": None, "codex": None, "gemini": None}),
    ("max_turns", {"max_turns": 7}, {"claude": ["--max-turns", "7"], "codex": None, "gemini": None}),
    (
        "system prompt",
        {"system_prompt": "Be terse."},
        {"claude": ["--system-prompt", "Be terse."], "codex": None, "gemini": None},
    ),
    (
        "ephemeral",
        {"ephemeral": True},
        {"claude": ["--no-session-persistence"], "codex": None, "gemini": None},
    ),
]


class MappingTests(SynchronousTestCase):
    """Every row of the mapping table of docs/design/cli-runs.md#flag-mapping."""

    def test_rows(self) -> None:
        """Each option adds exactly its flags, and nothing for the backends that have none."""
        for name, request, expected in ROWS:
            for backend, flags in expected.items():
                base = argv(backend)
                mapped = argv(backend, **request)
                added = [
                    token for token in mapped if token not in base or mapped.count(token) > base.count(token)
                ]
                if flags is None:
                    self.assertEqual(mapped, base, (name, backend))
                else:
                    self.assertEqual(added, flags, (name, backend))

    def test_output_json(self) -> None:
        """Output json (every non-streaming run): each backend's json flag."""
        self.assertEqual(argv("claude"), ["--print", "--output-format", "json"])
        self.assertEqual(argv("codex"), ["exec", "--json", "-"])
        self.assertEqual(argv("gemini"), ["--output-format", "json"])

    def test_output_stream_json(self) -> None:
        """
        Output stream-json: Claude adds --verbose and partial messages
        (docs/design/decisions.md#d9-token-streaming).
        """
        self.assertEqual(
            argv("claude", streaming=True),
            ["--print", "--output-format", "stream-json", "--verbose", "--include-partial-messages"],
        )
        self.assertEqual(argv("codex", streaming=True), ["exec", "--json", "-"])
        self.assertEqual(argv("gemini", streaming=True), ["--output-format", "stream-json"])

    def test_verbose_twice(self) -> None:
        """Streaming Claude with verbose has --verbose twice."""
        self.assertEqual(argv("claude", streaming=True, verbose=True).count("--verbose"), 2)

    def test_unknown_values_ignored(self) -> None:
        """Unrecognised and "default" modes produce no flags, without an error."""
        for backend in BACKENDS:
            self.assertEqual(argv(backend, approval_mode="sometimes", sandbox_mode="default"), argv(backend))

    def test_order(self) -> None:
        """Approval, sandbox, output, verbose, dry run, max turns, system prompt, ephemeral, extra."""
        self.assertEqual(
            argv(
                "claude",
                approval_mode="auto",
                verbose=True,
                dry_run=True,
                max_turns=3,
                system_prompt="S",
                ephemeral=True,
                extra=["--add-dir", "/x"],
                raw={"backends": {"claude": {"extra_flags": ["--continue"]}}},
            ),
            [
                "--print",
                "--permission-mode",
                "acceptEdits",
                "--output-format",
                "json",
                "--verbose",
                "--max-turns",
                "3",
                "--system-prompt",
                "S",
                "--no-session-persistence",
                "--add-dir",
                "/x",
                "--continue",
            ],
        )
        self.assertEqual(
            argv("codex", approval_mode="none", sandbox_mode="full", dry_run=True),
            [
                "exec",
                "--ask-for-approval",
                "never",
                "--sandbox",
                "danger-full-access",
                "--json",
                "--sandbox",
                "read-only",
                "-",
            ],
        )

    def test_allowed_tools(self) -> None:
        """Configured allowed_tools reach Claude right after the model, verbatim; others ignore them."""
        for backend in BACKENDS:
            raw = {"backends": {backend: {"allowed_tools": "all"}}}
            mapped = argv(backend, raw=raw, model="best")
            if backend == "claude":
                self.assertEqual(mapped[:5], ["--print", "--model", "opus", "--allowedTools", "all"])
            else:
                self.assertNotIn("--allowedTools", mapped)


class AllowListTests(SynchronousTestCase):
    """The extra-flag walk of docs/design/cli-runs.md#extra-flags."""

    def check(self, backend: str, extra: list[str]) -> str | None:
        return check_extra_flags(backend, BACKENDS[backend].allowed_flags, extra)

    def test_valid(self) -> None:
        """Flag/value pairs, booleans and name=value forms pass."""
        self.assertIsNone(self.check("codex", ["--model", "gpt-4"]))
        self.assertIsNone(self.check("claude", ["--add-dir", "./docs", "-v"]))
        self.assertIsNone(self.check("gemini", ["--MODEL=x"]))
        self.assertIsNone(self.check("claude", ["--resume", "abc", "--continue"]))

    def test_value_first(self) -> None:
        """A value with no flag before it is refused."""
        self.assertEqual(
            self.check("claude", ["./docs"]), "invalid flag format: ./docs (must start with - or --)"
        )
        self.assertEqual(
            self.check("claude", ["value", "--model"]), "invalid flag format: value (must start with - or --)"
        )

    def test_dash_token_in_value_slot(self) -> None:
        """A dash token is always a flag, even where a value is expected."""
        self.assertEqual(self.check("codex", ["--model", "--force"]), "flag not allowed for codex: --force")

    def test_boolean_takes_no_value(self) -> None:
        """After a boolean flag, or a name=value flag, a bare value is refused."""
        self.assertIsNotNone(self.check("claude", ["--verbose", "x"]))
        self.assertIsNotNone(self.check("gemini", ["--model=x", "y"]))

    def test_per_backend(self) -> None:
        """Each backend has its own list; the common short flags are everyone's."""
        self.assertEqual(self.check("claude", ["--json"]), "flag not allowed for claude: --json")
        self.assertEqual(
            self.check("codex", ["--permission-mode", "x"]), "flag not allowed for codex: --permission-mode"
        )
        for backend in BACKENDS:
            self.assertIsNone(
                self.check(backend, ["-v", "-q", "-h", "--help", "--version", "-m", "x", "-o", "json"])
            )

    def test_allowed_names(self) -> None:
        """The allow-lists are those of docs/design/cli-runs.md#extra-flags."""
        self.assertEqual(
            BACKENDS["claude"].allowed_flags,
            {
                "--model",
                "--print",
                "--output-format",
                "--verbose",
                "--max-turns",
                "--system-prompt",
                "--permission-mode",
                "--resume",
                "--add-dir",
                "--allowedtools",
                "--allowed-tools",
                "--no-session-persistence",
                "--continue",
                "--resume-session-at",
                "--fork-session",
            },
        )
        self.assertEqual(
            BACKENDS["codex"].allowed_flags,
            {
                "--model",
                "--json",
                "--sandbox",
                "--ask-for-approval",
                "--full-auto",
                "--quiet",
                "--config-dir",
            },
        )
        self.assertEqual(
            BACKENDS["gemini"].allowed_flags,
            {
                "--model",
                "--output-format",
                "--sandbox",
                "--approval-mode",
                "--yolo",
                "--debug",
                "--color",
                "--disable-color",
            },
        )
        self.assertIsNone(self.check("claude", ["--allowedTools", "Read"]))
