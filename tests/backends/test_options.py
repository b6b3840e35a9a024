"""
Tests for L{clinvk.backends.options}: the configuration layering of
docs/design/cli-runs.md#option-layering, model aliases
(docs/design/cli-runs.md#model-aliases) and formats (docs/design/cli-runs.md#output-formats).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.options import effective_format, resolve_model
from tests.backends.helpers import config, options

BACKENDS = build_backends()


class LayeringTests(SynchronousTestCase):
    """Request, then unified_flags, then backends.<name> (docs/design/cli-runs.md#option-layering)."""

    def test_request_wins(self) -> None:
        """Request values are kept over configured ones."""
        opts = options(
            "claude",
            {"unified_flags": {"approval_mode": "always", "max_turns": 9}},
            approval_mode="auto",
            max_turns=2,
        )
        self.assertEqual((opts.approval_mode, opts.max_turns), ("auto", 2))

    def test_unified_defaults(self) -> None:
        """unified_flags fill empty modes and zero counts."""
        opts = options(
            "codex",
            {
                "unified_flags": {
                    "approval_mode": "none",
                    "sandbox_mode": "full",
                    "max_turns": 4,
                    "max_tokens": 100,
                }
            },
        )
        self.assertEqual((opts.approval_mode, opts.sandbox_mode), ("none", "full"))
        self.assertEqual((opts.max_turns, opts.max_tokens), (4, 100))

    def test_verbose_and_dry_run_forced(self) -> None:
        """unified_flags.verbose and dry_run force the option on."""
        opts = options("gemini", {"unified_flags": {"verbose": True, "dry_run": True}})
        self.assertTrue(opts.verbose)
        self.assertTrue(opts.dry_run)
        self.assertFalse(options("gemini").dry_run)

    def test_backend_mode_beats_explicit_default(self) -> None:
        """A backend's approval/sandbox mode replaces "" and an explicit "default"."""
        raw = {"backends": {"codex": {"approval_mode": "auto", "sandbox_mode": "read-only"}}}
        for given in ("", "default"):
            opts = options("codex", raw, approval_mode=given, sandbox_mode=given)
            self.assertEqual((opts.approval_mode, opts.sandbox_mode), ("auto", "read-only"))
        opts = options("codex", raw, approval_mode="none")
        self.assertEqual(opts.approval_mode, "none")

    def test_backend_beats_unified(self) -> None:
        """A backend mode also replaces a unified default of "default"."""
        opts = options(
            "claude",
            {
                "unified_flags": {"approval_mode": "default"},
                "backends": {"claude": {"approval_mode": "always"}},
            },
        )
        self.assertEqual(opts.approval_mode, "always")

    def test_model_system_prompt_allowed_tools(self) -> None:
        """Model and system prompt fall back to the backend section; allowed_tools only comes from it."""
        raw = {
            "backends": {"claude": {"model": "opus", "system_prompt": "Be brief.", "allowed_tools": "Read"}}
        }
        opts = options("claude", raw)
        self.assertEqual((opts.model, opts.system_prompt, opts.allowed_tools), ("opus", "Be brief.", "Read"))
        opts = options("claude", raw, model="haiku", system_prompt="Be long.")
        self.assertEqual((opts.model, opts.system_prompt), ("haiku", "Be long."))

    def test_extra_flags_appended(self) -> None:
        """Configured extra_flags come after the request's extra."""
        opts = options("claude", {"backends": {"claude": {"extra_flags": ["--add-dir", "/x"]}}}, extra=["-v"])
        self.assertEqual(opts.extra, ("-v", "--add-dir", "/x"))

    def test_internal_format(self) -> None:
        """Non-streaming runs ask the CLI for json whatever was requested; streaming for stream-json."""
        for requested in ("", "default", "text", "json", "stream-json"):
            self.assertEqual(options(output_format=requested).output_format, "json")
        self.assertEqual(options(streaming=True).output_format, "stream-json")

    def test_ephemeral(self) -> None:
        """The ephemeral flag is the request's."""
        self.assertTrue(options(ephemeral=True).ephemeral)


class AliasTests(SynchronousTestCase):
    """The model alias table of docs/design/cli-runs.md#model-aliases."""

    def test_table(self) -> None:
        """Every alias resolves per backend."""
        expected = {
            "claude": ("haiku", "sonnet", "opus"),
            "codex": ("gpt-4.1-mini", "gpt-5.2", "gpt-5-codex"),
            "gemini": ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-pro"),
        }
        for backend, (fast, balanced, best) in expected.items():
            for alias, model in (
                ("fast", fast),
                ("quick", fast),
                ("balanced", balanced),
                ("default", balanced),
                ("best", best),
                ("powerful", best),
            ):
                self.assertEqual(resolve_model(BACKENDS[backend], alias), model, (backend, alias))
            self.assertEqual(len(BACKENDS[backend].aliases), 6)

    def test_exact_and_passthrough(self) -> None:
        """Matching is exact and case-sensitive; other names pass unchanged."""
        self.assertEqual(resolve_model(BACKENDS["claude"], "Fast"), "Fast")
        self.assertEqual(resolve_model(BACKENDS["claude"], "claude-opus-4"), "claude-opus-4")


class FormatTests(SynchronousTestCase):
    """The effective requested format (docs/design/cli-runs.md#output-formats)."""

    def test_order(self) -> None:
        """The request's, else output.format, else json; case and spaces ignored."""
        self.assertEqual(effective_format(" Stream-JSON ", config()), "stream-json")
        self.assertEqual(
            effective_format("default", config({"output": {"format": "stream-json"}})), "stream-json"
        )
        self.assertEqual(effective_format("", config({"output": {"format": "default"}})), "json")
        self.assertEqual(effective_format("text", config({"output": {"format": "stream-json"}})), "text")
