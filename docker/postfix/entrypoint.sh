#!/bin/sh
# Postfix front-end of the demo cluster: postfix/relay-main.cf as shipped, with mailhostd's
# address (MAILHOSTD_ADDRESS, an IP literal as relay-main.cf asks) in place of 127.0.0.1. The
# ports stay the defaults the fragment names; docker/mailhostd.yaml keeps them.
set -eu
. /usr/local/lib/mailhostd-demo/rewrite.sh
: "${MAILHOSTD_ADDRESS:?set MAILHOSTD_ADDRESS to the IP address of mailhostd}"

main=/etc/postfix/main.cf
cat /usr/share/mailhostd/docker/postfix/main.cf /usr/share/mailhostd/postfix/relay-main.cf > "$main"
rewrite "$main" 'inet:127.0.0.1:' "inet:$MAILHOSTD_ADDRESS:"

postfix check
# In the foreground as PID 1: postfix-script then execs the master in init mode, which reaps
# orphans and stops every daemon on SIGTERM (docker stop).
exec postfix start-fg
