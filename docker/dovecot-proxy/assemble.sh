#!/bin/sh
# The Dovecot IMAP/POP3 proxy's configuration, written by the entrypoint at every start:
# dovecot/proxy-lua.conf as shipped plus container.conf as /etc/dovecot/local.conf, with
# mailhostd's address (MAILHOSTD_ADDRESS, an IP literal as the conf asks) in place of 127.0.0.1
# in lua_settings' url; dovecot/mailhostd.lua verbatim; mailhostd's login.secret (LOGIN_SECRET)
# in the secret file lua_settings names.
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
: "${MAILHOSTD_ADDRESS:?set MAILHOSTD_ADDRESS to the IP address of mailhostd}"
: "${LOGIN_SECRET:?set LOGIN_SECRET to the login.secret of mailhostd}"

without_system_users "$etc"

install -m 0644 "$share/dovecot/mailhostd.lua" "$etc/mailhostd.lua"

# root:dovecot 0640, as proxy-lua.conf's install notes say.
secret=$etc/mailhostd.secret
install -m 0640 -o root -g dovecot /dev/null "$secret"
printf '%s\n' "$LOGIN_SECRET" > "$secret"

conf=$etc/local.conf
cat "$share/dovecot/proxy-lua.conf" "$share/docker/dovecot-proxy/container.conf" > "$conf"
rewrite "$conf" 'url = http://127.0.0.1:' "url = http://$MAILHOSTD_ADDRESS:"
