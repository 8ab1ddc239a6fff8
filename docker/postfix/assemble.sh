#!/bin/sh
# The Postfix front-end's configuration, written by the entrypoint at every start: master.cf
# without chroot and with postlogd, and main.cf = container main.cf + postfix/relay-main.cf as
# shipped, with mailhostd's address (MAILHOSTD_ADDRESS, an IP literal as relay-main.cf asks) in
# place of 127.0.0.1. The ports stay the defaults the fragment names; docker/mailhostd.yaml keeps
# them.
#
#   assemble.sh SHARE CONFIG_DIR
#
# SHARE: where the repository's files are, under their repository paths (/usr/share/mailhostd in
# the image). CONFIG_DIR: Postfix's configuration directory (/etc/postfix). test/packaging runs
# this script inside the Debian 13 peer root with SHARE = the checkout and CONFIG_DIR = a copy of
# that root's stock /etc/postfix, and checks the result with Debian 13's postconf.
set -eu
share=$1
etc=$2
. "$share/docker/lib/rewrite.sh"
: "${MAILHOSTD_ADDRESS:?set MAILHOSTD_ADDRESS to the IP address of mailhostd}"

main=$etc/main.cf
cat "$share/docker/postfix/main.cf" "$share/postfix/relay-main.cf" > "$main"
rewrite "$main" 'inet:127.0.0.1:' "inet:$MAILHOSTD_ADDRESS:"

# Debian's master.cf runs smtpd, cleanup, trivial-rewrite and the delivery agents chrooted in
# the queue directory, which would need copies of /etc files; a container is isolation enough.
# postlogd carries maillog_file = /dev/stdout (docker/postfix/main.cf). postconf -F moves the
# entries it edits even when nothing changes, so a restart edits only what is still chrooted.
# (postconf reads main.cf first, hence this order.)
chroots=$(postconf -c "$etc" -F '*/*/chroot')
if printf '%s\n' "$chroots" | grep -qv ' = n$'; then
  postconf -c "$etc" -F '*/*/chroot = n'
fi
postconf -c "$etc" -M 'postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd'
