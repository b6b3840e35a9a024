#!/bin/sh
# A server started with CLINVK_API_KEYS wants one of its keys with every request.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}
KEY=${CLINVK_API_KEY:?set CLINVK_API_KEY to one of the server keys}

curl -s "$URL/api/v1/prompt" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"backend": "claude", "prompt": "Hello"}'

# X-Api-Key works too.
curl -s "$URL/api/v1/backends" -H "X-Api-Key: $KEY"
