#!/bin/sh
# Ask every backend the same question, all at once.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -s "$URL/api/v1/compare" -H 'Content-Type: application/json' \
  -d '{"backends": ["claude", "codex", "gemini"], "prompt": "Name a prime number"}'
