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

from clinvk.model import ClientTools

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


def codex_settings(tools: ClientTools) -> list[str]:
    """
    Codex's C{-c} settings of clinvk's server: its URL, its tools run
    without an approval prompt, and its calls wait as long as the client may
    (docs/design/client-tools.md#client-tools-codex).
    """
    prefix = f"mcp_servers.{tools.server_name}"
    settings = [
        f"{prefix}.url={json.dumps(tools.url)}",
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
