"""Stream a prompt's events with the standard library and print the answer as it arrives."""

import json
import os
import urllib.request

URL = os.environ.get("CLINVK_URL", "http://127.0.0.1:8080")

request = urllib.request.Request(
    f"{URL}/api/v1/prompt",
    data=json.dumps(
        {"backend": "claude", "prompt": "Write a haiku about autumn", "output_format": "stream-json"}
    ).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as response:
    # NDJSON: one event per line, sent the moment the CLI produces it.
    for line in response:
        event = json.loads(line)
        if event["type"] == "message":
            print(event["content"]["text"], end="", flush=True)
        elif event["type"] == "error":
            raise SystemExit(f"\nfailed: {event['content']['message']}")
        elif event["type"] == "done":
            print(f"\n[session {event['session_id']}, usage {event['content'].get('token_usage')}]")
