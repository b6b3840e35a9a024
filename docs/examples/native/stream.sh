#!/bin/sh
# Stream a prompt's events as NDJSON, one JSON object per line as it happens.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

# -N: print each event the moment it arrives instead of buffering.
curl -sN "$URL/api/v1/prompt" -H 'Content-Type: application/json' \
  -d '{"backend": "claude", "prompt": "Write a haiku about autumn", "output_format": "stream-json"}'
