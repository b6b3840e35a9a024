#!/bin/sh
# The Anthropic-compatible stream on the wire: named server-sent events.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -sN "$URL/anthropic/v1/messages" -H 'Content-Type: application/json' \
  -d '{"model": "claude", "max_tokens": 1024, "stream": true, "messages": [{"role": "user", "content": "Count to three"}]}'
