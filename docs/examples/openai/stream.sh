#!/bin/sh
# The OpenAI-compatible stream on the wire: server-sent events ending with [DONE].
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -sN "$URL/openai/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "claude", "stream": true, "messages": [{"role": "user", "content": "Count to three"}]}'
