#!/bin/sh
# The Dovecot IMAP/POP3 proxy of the demo cluster: dovecot/proxy-lua.conf and
# dovecot/mailhostd.lua as shipped, with mailhostd's address (MAILHOSTD_ADDRESS, an IP literal
# as mailhostd.lua asks) in place of 127.0.0.1, and mailhostd's login.secret (LOGIN_SECRET) in
# the secret file the script reads.
set -eu
. /usr/local/lib/mailhostd-demo/rewrite.sh
: "${MAILHOSTD_ADDRESS:?set MAILHOSTD_ADDRESS to the IP address of mailhostd}"
: "${LOGIN_SECRET:?set LOGIN_SECRET to the login.secret of mailhostd}"

lua=/etc/dovecot/mailhostd.lua
cp /usr/share/mailhostd/dovecot/mailhostd.lua "$lua"
chmod 0644 "$lua"
rewrite "$lua" 'http://127.0.0.1:' "http://$MAILHOSTD_ADDRESS:"

# root:dovecot 0640, as proxy-lua.conf's install notes say.
secret=/etc/dovecot/mailhostd.secret
install -m 0640 -o root -g dovecot /dev/null "$secret"
printf '%s\n' "$LOGIN_SECRET" > "$secret"

cat /usr/share/mailhostd/dovecot/proxy-lua.conf /usr/share/mailhostd/docker/dovecot-proxy/container.conf > /etc/dovecot/local.conf

exec dovecot -F
