#!/bin/sh
# Run one prompt on Claude and print the JSON result.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -s "$URL/api/v1/prompt" -H 'Content-Type: application/json' \
  -d '{"backend": "claude", "prompt": "What is 2+2?"}'
