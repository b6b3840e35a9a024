# -*- test-case-name: tests.backends.test_client_tools -*-
"""
How each CLI is pointed at clinvk's MCP endpoint for the client's tools
(docs/design/client-tools.md): the name the tools reach the model by, and
the configuration a run's files hold.  The URL holds the endpoint's secret,
so it goes into a file of the run's own directory, mode 0600, where the
CLI reads it from: another user of the machine can read a command line.
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from twisted.logger import Logger

from clinvk.model import ClientTools

log = Logger()

# Claude's --mcp-config file, in the run's own directory.
CLAUDE_MCP_CONFIG = "mcp.json"

# Past the client's own time, for the CLI's wait on a call: clinvk ends
# the wait first, and tells the CLI.
CLI_TIMEOUT_MARGIN_SECS = 30


def claude_tool_name(tools: ClientTools, name: str) -> str:
    """The name claude's model knows a client tool by."""
    return f"mcp__{tools.server_name}__{name}"


def claude_mcp_config(tools: ClientTools) -> bytes:
    """
    Claude's C{--mcp-config} file: one HTTP server, clinvk's, whose calls
    may wait as long as the client may take (its default is 60 seconds
    for an answer to begin).
    """
    server = {"type": "http", "url": tools.url, "timeout": cli_timeout_secs(tools) * 1000}
    return json.dumps({"mcpServers": {tools.server_name: server}}).encode("utf-8")


def cli_timeout_secs(tools: ClientTools) -> int:
    """How long a CLI is to wait on one call."""
    return tools.timeout_secs + CLI_TIMEOUT_MARGIN_SECS


# The variable codex reads the endpoint's secret from, as a bearer token.
CODEX_TOKEN_VARIABLE = "CLINVK_MCP_TOKEN"


def codex_settings(tools: ClientTools) -> list[str]:
    """
    Codex's C{-c} settings of clinvk's server: its URL without the secret
    (which codex presents as a bearer token, from L{CODEX_TOKEN_VARIABLE}),
    its tools run without an approval prompt, and its calls wait as long as
    the client may (docs/design/client-tools.md#client-tools-codex).
    """
    prefix = f"mcp_servers.{tools.server_name}"
    settings = [
        f"{prefix}.url={json.dumps(tools.endpoint)}",
        f"{prefix}.bearer_token_env_var={json.dumps(CODEX_TOKEN_VARIABLE)}",
        f'{prefix}.default_tools_approval_mode="approve"',
        f"{prefix}.tool_timeout_sec={cli_timeout_secs(tools)}",
    ]
    argv = [part for setting in settings for part in ("-c", setting)]
    if not tools.keep_cli_tools:
        argv += CODEX_OWN_TOOLS_OFF
    return argv


# What turns codex's own tools off: its shell, image viewer, sub-agents,
# goals, web search and questions to the user.  Three tools that read MCP
# resources stay: codex adds them whenever an MCP server is configured.
CODEX_OWN_TOOLS_OFF = [
    *("--disable", "shell_tool"),
    *("--disable", "view_image"),
    *("--disable", "multi_agent"),
    *("--disable", "goals"),
    *("-c", 'web_search="disabled"'),
    *("-c", "tools.experimental_request_user_input.enabled=false"),
]


# The run's own home for gemini (GEMINI_CLI_HOME), in its directory.
GEMINI_HOME = "home"
GEMINI_HOME_VARIABLE = "GEMINI_CLI_HOME"
GEMINI_SETTINGS = "settings.json"


def gemini_tool_settings(tools: ClientTools) -> dict[str, Any]:
    """
    What gemini's settings gain for the client's tools: clinvk's server,
    trusted (no confirmation), whose calls wait as long as the client may;
    and, unless it keeps them, none of its own tools
    (docs/design/client-tools.md#client-tools-gemini).
    """
    server = {"httpUrl": tools.url, "trust": True, "timeout": cli_timeout_secs(tools) * 1000}
    settings: dict[str, Any] = {"mcpServers": {tools.server_name: server}}
    if not tools.keep_cli_tools:
        settings["tools"] = {"core": [f"mcp_{tools.server_name}_*"]}
    return settings


@attrs.frozen
class GeminiHome:
    """
    Makes a run's own gemini home: its C{.gemini} links to every entry of
    the user's (logins, conversations), except the settings, which are the
    user's with L{settings} laid over them.  Gemini reads a settings file
    of the user's alone (a system one must be root's), so the run is given
    a home of its own rather than a change to the user's file.

    @ivar settings: What the run's settings add (L{gemini_tool_settings}).
    @ivar user_home: The user's home; by default this process's.
    """

    settings: dict[str, Any] = attrs.field(repr=False)
    user_home: str = ""

    def __call__(self, path: str) -> None:
        state = os.path.join(path, ".gemini")
        os.makedirs(state, 0o700)
        users = os.path.abspath(os.path.join(self.user_home or os.path.expanduser("~"), ".gemini"))
        try:
            entries = os.listdir(users)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry != GEMINI_SETTINGS:
                os.symlink(os.path.join(users, entry), os.path.join(state, entry))
        merged = _laid_over(_user_settings(os.path.join(users, GEMINI_SETTINGS)), self.settings)
        descriptor = os.open(
            os.path.join(state, GEMINI_SETTINGS), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(merged, file)


def _user_settings(path: str) -> dict[str, Any]:
    """The user's gemini settings; none when there are none or they are no plain JSON."""
    try:
        with open(path, encoding="utf-8") as file:
            found = json.load(file)
    except FileNotFoundError:
        return {}
    except ValueError:
        log.warn(
            "The gemini settings {path} are no plain JSON; a run with client tools goes without them",
            path=path,
        )
        return {}
    return found if isinstance(found, dict) else {}


def _laid_over(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """C{under} with C{over}'s members laid over it, objects merged member by member."""
    merged = dict(under)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = (
            _laid_over(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
        )
    return merged
