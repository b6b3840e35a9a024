#!/bin/sh
# Run steps in order; {{previous}} becomes the previous step's output.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -s "$URL/api/v1/chain" -H 'Content-Type: application/json' -d '{
  "steps": [
    {"name": "draft", "backend": "claude", "prompt": "Write a tagline for a bakery"},
    {"name": "review", "backend": "gemini", "prompt": "Make this tagline shorter: {{previous}}"}
  ],
  "stop_on_failure": true
}'
