#!/bin/sh
# Postfix front-end of the demo cluster: its configuration from the repository's files
# (assemble.sh), then Postfix in the foreground.
set -eu
sh /usr/share/mailhostd/docker/postfix/assemble.sh /usr/share/mailhostd /etc/postfix

postfix check
# In the foreground as PID 1: postfix-script then execs the master in init mode, which reaps
# orphans and stops every daemon on SIGTERM (docker stop).
exec postfix start-fg
