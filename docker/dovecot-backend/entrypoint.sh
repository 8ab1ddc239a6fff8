#!/bin/sh
# A Dovecot backend of the demo cluster: dovecot/backend.conf as shipped, listening for LMTP on
# this container's address (BACKEND_ADDRESS) instead of 10.0.0.11, with the demo accounts whose
# mailHost is MAILHOST in its passwd-file.
set -eu
. /usr/local/lib/mailhostd-demo/rewrite.sh
: "${BACKEND_ADDRESS:?set BACKEND_ADDRESS to the IP address of this backend (backends[].address)}"
: "${MAILHOST:?set MAILHOST to the mailHost of this backend (mx1.example.org)}"

conf=/etc/dovecot/local.conf
cat /usr/share/mailhostd/dovecot/backend.conf /usr/share/mailhostd/docker/dovecot-backend/container.conf > "$conf"
rewrite "$conf" 'address = 10.0.0.11' "address = $BACKEND_ADDRESS"

# Read by the auth process (user dovecot), nobody else: as backend.conf says.
users=/etc/dovecot/users
install -m 0640 -o root -g dovecot /dev/null "$users"
awk -v want="$MAILHOST" -f /usr/share/mailhostd/docker/dovecot-backend/users.awk /usr/share/mailhostd/ldap/demo.ldif > "$users"
if [ ! -s "$users" ]; then
  echo "no account in fixtures/ldap/demo.ldif has mailHost $MAILHOST" >&2
  exit 1
fi

exec dovecot -F
