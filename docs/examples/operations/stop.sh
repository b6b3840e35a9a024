#!/bin/sh
# Stop the daemon and wait until it has exited: it finishes the requests in
# flight first (for up to server.shutdown_timeout_secs), then removes its
# pidfile.
pidfile=/run/clinvk/clinvk.pid
kill -TERM "$(cat "$pidfile")"
while [ -e "$pidfile" ]; do
    sleep 1
done
