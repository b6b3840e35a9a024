#!/bin/sh
# List the sessions, look at the most recent one and delete it.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

# Claude's sessions, most recently used first, at most 20
curl -s "$URL/api/v1/sessions?backend=claude&limit=20"

latest=$(curl -s "$URL/api/v1/sessions?limit=1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sessions"][0]["id"])')
prefix=$(echo "$latest" | cut -c1-8)

# Any unique prefix of at least 8 characters names a session.
curl -s "$URL/api/v1/sessions/$prefix"
curl -s -X DELETE "$URL/api/v1/sessions/$prefix"
