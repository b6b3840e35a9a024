#!/bin/sh
# Start clinvk as a daemon that logs to syslog, tagged "clinvk".
/opt/clinvk/bin/twistd --pidfile /run/clinvk/clinvk.pid --syslog --prefix clinvk \
    clinvk --port 8080 --config /etc/clinvk/config.yaml
