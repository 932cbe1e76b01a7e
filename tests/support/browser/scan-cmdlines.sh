#!/bin/sh
# $BROWSER for tests: appends every process's command line (as any local
# user can read them from /proc) to $KEYGATE_TEST_CMDLINES while the login
# waits, then hands the URL to the scripted browser.
for f in /proc/[0-9]*/cmdline; do
  tr '\0' ' ' < "$f" 2>/dev/null && echo
done >> "$KEYGATE_TEST_CMDLINES"
exec "$(dirname "$0")/../browser.py" "$@"
