#!/bin/sh
# Print clinvk's own metrics (server.metrics_enabled: true).
set -eu
URL=${CLINVK_URL:-http://127.0.0.1:8080}

curl -sf "$URL/metrics" | grep '^clinvk_'
