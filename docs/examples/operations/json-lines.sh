#!/bin/sh
# twistd in the foreground (under a supervisor), logging JSON lines to stdout.
exec /opt/clinvk/bin/twistd --nodaemon --pidfile '' --logger clinvk.logs.json_observer \
    clinvk --port 8080 --config /etc/clinvk/config.yaml
