#!/bin/sh
# Build step of docker/openldap/Dockerfile: fills fixtures/ldap/slapd.conf.template the way
# test/harness/slapd.ts does (same tokens, no TLS, anonymous reads refused as in production)
# and loads the demo directory with slapadd.
set -eu

src=/usr/share/mailhostd/ldap
conf=/etc/ldap/slapd.conf

# The rootdn's password: random per image, kept in a root-only file for ldapmodify by hand
# (`ldapmodify -x -D cn=admin,dc=example,dc=org -y /etc/ldap/rootpw`). mailhostd never uses it:
# it reads as cn=mailhostd and writes as cn=mailhostd-admin (fixtures/ldap/demo.ldif).
umask 077
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > /etc/ldap/rootpw
umask 022
root_password=$(cat /etc/ldap/rootpw)

install -d -o openldap -g openldap -m 0750 /var/lib/ldap /run/slapd
sed -e "s|@@SCHEMA_DIR@@|/etc/ldap/schema|g" \
    -e "s|@@FIXTURES_DIR@@|$src|g" \
    -e "s|@@RUN_DIR@@|/run/slapd|g" \
    -e "s|@@DATA_DIR@@|/var/lib/ldap|g" \
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
chown -R openldap:openldap /var/lib/ldap
