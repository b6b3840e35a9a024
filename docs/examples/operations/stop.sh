#!/bin/sh
# Stop the daemon and wait until it has exited: it finishes the requests in
# flight first (for up to server.shutdown_timeout_secs), then removes its
# pidfile. Exits 1 at once if the pidfile names no running daemon.
pidfile=/run/clinvk/clinvk.pid
pid=$(cat "$pidfile") && kill -TERM "$pid" || {
    echo "clinvk is not running: no process for the pid in $pidfile" >&2
    exit 1
}
while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
done
