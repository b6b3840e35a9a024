"""
How each CLI is pointed at clinvk's MCP endpoint for the client's tools
(docs/design/client-tools.md): flags, settings and run files.
"""

from __future__ import annotations

import json

import attrs

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.claude import ClaudeBackend
from clinvk.backends.codex import CodexBackend
from clinvk.model import ClientTools
from tests.backends.helpers import options

URL = "http://127.0.0.1:4000/mcp/s3cret"
TOOLS = ClientTools(URL, ("get_weather", "get_time"), timeout_secs=300)


class ClaudeTests(SynchronousTestCase):
    backend = ClaudeBackend()

    def test_flags(self) -> None:
        """
        The configuration is a file of the run's own (the URL is secret);
        the user's MCP servers and the CLI's own tools are off; the client's
        tools run without a permission prompt.
        """
        given = attrs.evolve(options("claude", client_tools=TOOLS), scratch="/run/x")
        argv = self.backend.command("claude", given, "")
        self.assertEqual(argv[argv.index("--mcp-config") + 1], "/run/x/mcp.json")
        self.assertIn("--strict-mcp-config", argv)
        self.assertEqual(argv[argv.index("--tools") + 1], "")
        self.assertEqual(
            argv[argv.index("--allowedTools") + 1], "mcp__clinvk__get_weather,mcp__clinvk__get_time"
        )
        self.assertNotIn(URL, " ".join(argv))
        written = self.backend.run_files(given)["mcp.json"]
        assert isinstance(written, bytes)
        config = json.loads(written)
        # Its calls may wait past claude's 60 seconds, as long as the client may take.
        server = {"type": "http", "url": URL, "timeout": 330_000}
        self.assertEqual(config, {"mcpServers": {"clinvk": server}})

    def test_keeping_its_tools(self) -> None:
        """Asked to keep its tools, it keeps them, and the configured allowed tools come first."""
        tools = attrs.evolve(TOOLS, keep_cli_tools=True)
        given = attrs.evolve(
            options("claude", {"backends": {"claude": {"allowed_tools": "Read"}}}, client_tools=tools),
            scratch="/r",
        )
        argv = self.backend.command("claude", given, "")
        self.assertNotIn("--tools", argv)
        self.assertEqual(
            argv[argv.index("--allowedTools") + 1], "Read,mcp__clinvk__get_weather,mcp__clinvk__get_time"
        )

    def test_without_tools(self) -> None:
        given = options("claude")
        self.assertNotIn("--mcp-config", self.backend.command("claude", given, ""))
        self.assertEqual(self.backend.run_files(given), {})


class CodexTests(SynchronousTestCase):
    backend = CodexBackend()

    def test_settings(self) -> None:
        """
        The server's URL, its tools approved, its calls waiting past the
        client's time; codex's own tools off unless kept.
        """
        argv = self.backend.command("codex", options("codex", client_tools=TOOLS), "")
        settings = [argv[index + 1] for index, arg in enumerate(argv) if arg == "-c"]
        self.assertEqual(
            settings,
            [
                f'mcp_servers.clinvk.url="{URL}"',
                'mcp_servers.clinvk.default_tools_approval_mode="approve"',
                "mcp_servers.clinvk.tool_timeout_sec=330",
                'web_search="disabled"',
                "tools.experimental_request_user_input.enabled=false",
            ],
        )
        disabled = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--disable"]
        self.assertEqual(disabled, ["shell_tool", "view_image", "multi_agent", "goals"])
        kept = self.backend.command(
            "codex", options("codex", client_tools=attrs.evolve(TOOLS, keep_cli_tools=True)), ""
        )
        self.assertNotIn("--disable", kept)
