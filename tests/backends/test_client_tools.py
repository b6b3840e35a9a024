"""
How each CLI is pointed at clinvk's MCP endpoint for the client's tools
(docs/design/client-tools.md): flags, settings and run files.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import attrs

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.claude import ClaudeBackend
from clinvk.backends.client_tools import GeminiHome, gemini_tool_settings
from clinvk.backends.codex import CodexBackend
from clinvk.backends.gemini import GeminiBackend
from clinvk.model import ClientTools
from tests.backends.helpers import options

ENDPOINT = "http://127.0.0.1:4000/mcp"
URL = f"{ENDPOINT}/s3cret"
TOOLS = ClientTools(URL, ("get_weather", "get_time"), timeout_secs=300, endpoint=ENDPOINT, secret="s3cret")


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
        The endpoint's URL, whose secret is a bearer token from the run's
        environment, not the command line; its tools approved, its calls
        waiting past the client's time; codex's own tools off unless kept.
        """
        given = options("codex", client_tools=TOOLS)
        argv = self.backend.command("codex", given, "")
        self.assertNotIn("s3cret", " ".join(argv))
        self.assertEqual(self.backend.run_environment(given), {"CLINVK_MCP_TOKEN": "s3cret"})
        settings = [argv[index + 1] for index, arg in enumerate(argv) if arg == "-c"]
        self.assertEqual(
            settings,
            [
                f'mcp_servers.clinvk.url="{ENDPOINT}"',
                'mcp_servers.clinvk.bearer_token_env_var="CLINVK_MCP_TOKEN"',
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


class GeminiTests(SynchronousTestCase):
    backend = GeminiBackend()

    def test_flags(self) -> None:
        """Only clinvk's MCP server, from the settings of a home of the run's own."""
        given = attrs.evolve(options("gemini", client_tools=TOOLS), scratch="/run/x")
        argv = self.backend.command("gemini", given, "")
        self.assertEqual(argv[argv.index("--allowed-mcp-server-names") + 1], "clinvk")
        self.assertEqual(self.backend.run_environment(given), {"GEMINI_CLI_HOME": "/run/x/home"})
        self.assertIsInstance(self.backend.run_files(given)["home"], GeminiHome)
        self.assertEqual(self.backend.run_environment(options("gemini")), {})

    def test_settings(self) -> None:
        """Clinvk's server, trusted, waiting past the client's time; its own tools off unless kept."""
        self.assertEqual(
            gemini_tool_settings(TOOLS),
            {
                "mcpServers": {"clinvk": {"httpUrl": URL, "trust": True, "timeout": 330_000}},
                "tools": {"core": ["mcp_clinvk_*"]},
            },
        )
        self.assertNotIn("tools", gemini_tool_settings(attrs.evolve(TOOLS, keep_cli_tools=True)))


class GeminiHomeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.user = Path(self.mktemp())
        (self.user / ".gemini" / "tmp").mkdir(parents=True)
        (self.user / ".gemini" / "oauth_creds.json").write_text("{}")
        self.runs = Path(self.mktemp())
        self.runs.mkdir()

    def test_home(self) -> None:
        """
        The run's .gemini links to the user's entries (logins, chats) and
        holds the user's settings with clinvk's laid over them; the user's
        file is untouched.
        """
        users = {
            "security": {"auth": {"selectedType": "oauth-personal"}},
            "tools": {"core": ["ls"], "sandbox": False},
        }
        (self.user / ".gemini" / "settings.json").write_text(json.dumps(users))
        GeminiHome(gemini_tool_settings(TOOLS), str(self.user))(str(self.runs / "home"))
        state = self.runs / "home" / ".gemini"
        self.assertEqual(
            sorted(entry.name for entry in state.iterdir()), ["oauth_creds.json", "settings.json", "tmp"]
        )
        self.assertEqual((state / "tmp").resolve(), (self.user / ".gemini" / "tmp").resolve())
        settings = json.loads((state / "settings.json").read_text())
        self.assertEqual(settings["security"], users["security"])
        self.assertEqual(settings["tools"], {"core": ["mcp_clinvk_*"], "sandbox": False})
        self.assertEqual(settings["mcpServers"]["clinvk"]["httpUrl"], URL)
        self.assertEqual(stat.S_IMODE((state / "settings.json").stat().st_mode), 0o600)
        self.assertEqual(json.loads((self.user / ".gemini" / "settings.json").read_text()), users)

    def test_no_user_settings(self) -> None:
        """Without the user's settings (or with settings no plain JSON can read), clinvk's alone."""
        (self.user / ".gemini" / "settings.json").write_text("{ // a comment\n}")
        GeminiHome(gemini_tool_settings(TOOLS), str(self.user))(str(self.runs / "one"))
        GeminiHome(gemini_tool_settings(TOOLS), str(self.runs / "nobody"))(str(self.runs / "two"))
        for made in ("one", "two"):
            settings = json.loads((self.runs / made / ".gemini" / "settings.json").read_text())
            self.assertEqual(settings, gemini_tool_settings(TOOLS))
