#!/bin/sh
# A tour of what a running server tells about itself.
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

# Is the server up, and which CLIs are on its PATH?
curl -s "$URL/health"

# The backends alone
curl -s "$URL/api/v1/backends"

# Save the OpenAPI 3.1 document (3.0 and YAML variants at /openapi-3.0.json, /openapi.yaml, /openapi-3.0.yaml)
curl -s "$URL/openapi.json" -o openapi.json

# The JSON Schema of one component
curl -s "$URL/schemas/BackendHealth.json"

# Every response carries a request id; send your own to correlate logs
curl -si -H 'X-Request-Id: my-trace-1' "$URL/health" | grep -i x-request-id
