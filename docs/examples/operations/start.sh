#!/bin/sh
# Start clinvk as a daemon. twistd returns once the server listens, or
# exits 1 with the reason when it cannot start.
/opt/clinvk/bin/twistd --pidfile /run/clinvk/clinvk.pid --logfile /var/log/clinvk/clinvk.log \
    clinvk --port 8080 --config /etc/clinvk/config.yaml
