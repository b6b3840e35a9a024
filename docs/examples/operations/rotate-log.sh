#!/bin/sh
# Have twistd rotate the log file itself: clinvk.log becomes clinvk.log.1.
kill -USR1 "$(cat /run/clinvk/clinvk.pid)"
