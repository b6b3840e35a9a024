#!/bin/sh
# Make the daemon reopen its log file, after the old one was moved away.
kill -HUP "$(cat /run/clinvk/clinvk.pid)"
