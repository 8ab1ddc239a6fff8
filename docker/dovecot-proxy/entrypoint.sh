#!/bin/sh
# The Dovecot IMAP/POP3 proxy of the demo cluster: its configuration from the repository's files
# (assemble.sh), then Dovecot in the foreground as PID 1.
set -eu
sh /usr/share/mailhostd/docker/dovecot-proxy/assemble.sh /usr/share/mailhostd /etc/dovecot
exec dovecot -F
