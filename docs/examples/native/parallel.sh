#!/bin/sh
# Run several prompts at once; the results keep the order of the tasks.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -s "$URL/api/v1/parallel" -H 'Content-Type: application/json' -d '{
  "tasks": [
    {"backend": "claude", "prompt": "Review the error handling in app.py"},
    {"backend": "gemini", "prompt": "Review the tests in test_app.py"}
  ],
  "max_parallel": 2,
  "fail_fast": true
}'
