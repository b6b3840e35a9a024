"""Run a prompt, continue its session twice, then look at the session."""

import json
import os
import urllib.request
from typing import Any

URL = os.environ.get("CLINVK_URL", "http://127.0.0.1:8080")


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Send a JSON request to clinvk and return the JSON answer."""
    request = urllib.request.Request(
        f"{URL}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


first = call("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "Pick a number"})
print(first["output"])
session_id = first["session_id"]

# The same session_id continues the conversation; the backend is the session's.
for prompt in ["Double it", "Now add ten"]:
    answer = call("POST", "/api/v1/prompt", {"session_id": session_id, "prompt": prompt})
    print(answer["output"])

session = call("GET", f"/api/v1/sessions/{session_id}")
print(f"{session['backend']} session {session['id'][:8]}: {session['turn_count']} turns, {session['status']}")
