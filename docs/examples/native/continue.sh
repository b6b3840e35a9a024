#!/bin/sh
# Run a prompt, then continue its session: the CLI resumes its own conversation.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

first=$(curl -s "$URL/api/v1/prompt" -H 'Content-Type: application/json' \
  -d '{"backend": "claude", "prompt": "Pick a number"}')
echo "$first"

# The answer names the session it created.
session=$(echo "$first" | python3 -c 'import json, sys; print(json.load(sys.stdin)["session_id"])')

curl -s "$URL/api/v1/prompt" -H 'Content-Type: application/json' \
  -d "{\"session_id\": \"$session\", \"prompt\": \"Double it\"}"
