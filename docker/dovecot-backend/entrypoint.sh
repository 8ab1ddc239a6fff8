#!/bin/sh
# A Dovecot backend of the demo cluster: its configuration and users from the repository's files
# (assemble.sh), then Dovecot in the foreground as PID 1.
set -eu
sh /usr/share/mailhostd/docker/dovecot-backend/assemble.sh /usr/share/mailhostd /etc/dovecot
exec dovecot -F
