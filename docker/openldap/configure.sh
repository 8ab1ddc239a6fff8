#!/bin/sh
# Build step of docker/openldap/Dockerfile: fills fixtures/ldap/slapd.conf.template the way
# test/harness/slapd.ts does (same tokens, no TLS, anonymous reads refused as in production)
# and loads the demo directory with slapadd.
#
# The directories default to the image's. test/packaging runs this script inside the Debian 13
# peer root with each of them in a temp dir and MAILHOSTD_SHARE = the checkout, so Debian 13's
# slapadd checks the configuration and loads the demo directory exactly as the image build does.
#   MAILHOSTD_SHARE  the repository's files under their repository paths [/usr/share/mailhostd]
#   SLAPD_ETC        slapd.conf and rootpw                                [/etc/ldap]
#   SLAPD_DATA       the mdb database                                     [/var/lib/ldap]
#   SLAPD_RUN        pid and args files                                   [/run/slapd]
set -eu

src=${MAILHOSTD_SHARE:-/usr/share/mailhostd}/fixtures/ldap
etc=${SLAPD_ETC:-/etc/ldap}
data=${SLAPD_DATA:-/var/lib/ldap}
run=${SLAPD_RUN:-/run/slapd}
conf=$etc/slapd.conf

# The rootdn's password: random per image, kept in a root-only file for ldapmodify by hand
# (`ldapmodify -x -D cn=admin,dc=example,dc=org -y /etc/ldap/rootpw`). mailhostd never uses it:
# it reads as cn=mailhostd and writes as cn=mailhostd-admin (fixtures/ldap/demo.ldif).
umask 077
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$etc/rootpw"
umask 022
root_password=$(cat "$etc/rootpw")

install -d -o openldap -g openldap -m 0750 "$data" "$run"
sed -e "s|@@SCHEMA_DIR@@|/etc/ldap/schema|g" \
    -e "s|@@FIXTURES_DIR@@|$src|g" \
    -e "s|@@RUN_DIR@@|$run|g" \
    -e "s|@@DATA_DIR@@|$data|g" \
    -e "s|@@ROOT_PASSWORD@@|$root_password|g" \
    -e "s|@@TLS@@||g" \
    -e "s|@@ANONYMOUS@@|by anonymous none|g" \
    -e "s|@@MAX_SIZE@@|67108864|g" \
    -e "s|@@SERVICE_LIMITS@@||g" \
    "$src/slapd.conf.template" > "$conf"
# Like the harness's fill(): a token this script does not know is an error, not a literal.
if grep -n '@@[A-Z_]*@@' "$conf"; then
  echo "configure.sh: $src/slapd.conf.template has tokens this script does not fill" >&2
  exit 1
fi
chown root:openldap "$conf"
chmod 0640 "$conf"

slapadd -q -f "$conf" -l "$src/demo.ldif"
chown -R openldap:openldap "$data"
