#!/bin/sh
# Run in the foreground and log one JSON object per line to stdout.
exec /opt/clinvk/bin/twist --log-format json clinvk --port 8080 --config /etc/clinvk/config.yaml
