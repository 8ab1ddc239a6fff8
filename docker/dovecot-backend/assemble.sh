#!/bin/sh
# A Dovecot backend's configuration, written by the entrypoint at every start:
# dovecot/backend.conf as shipped plus container.conf as /etc/dovecot/local.conf, listening for
# LMTP on this container's address (BACKEND_ADDRESS) instead of 10.0.0.11; and the passwd-file
# backend.conf names, holding the demo accounts whose mailHost is MAILHOST.
#
#   assemble.sh SHARE ETC
#
# SHARE: where the repository's files are, under their repository paths (/usr/share/mailhostd in
# the image). ETC: Dovecot's configuration directory (/etc/dovecot). test/packaging runs this
# script inside the Debian 13 peer root with SHARE = the checkout and ETC = a copy of that root's
# stock /etc/dovecot, and checks the result with Debian 13's doveconf and Dovecot.
set -eu
share=$1
etc=$2
. "$share/docker/lib/rewrite.sh"
. "$share/docker/lib/dovecot.sh"
: "${BACKEND_ADDRESS:?set BACKEND_ADDRESS to the IP address of this backend (backends[].address)}"
: "${MAILHOST:?set MAILHOST to the mailHost of this backend (mx1.example.org)}"

without_system_users "$etc"

conf=$etc/local.conf
cat "$share/dovecot/backend.conf" "$share/docker/dovecot-backend/container.conf" > "$conf"
rewrite "$conf" 'listen = 10.0.0.11' "listen = $BACKEND_ADDRESS"

# Read by the auth process (user dovecot), nobody else: as backend.conf says.
users=$etc/users
install -m 0640 -o root -g dovecot /dev/null "$users"
awk -v want="$MAILHOST" -f "$share/docker/dovecot-backend/users.awk" "$share/fixtures/ldap/demo.ldif" > "$users"
if [ ! -s "$users" ]; then
  echo "no account in fixtures/ldap/demo.ldif has mailHost $MAILHOST" >&2
  exit 1
fi
