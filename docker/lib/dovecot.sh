# Sourced by docker/dovecot-proxy/assemble.sh and docker/dovecot-backend/assemble.sh.

# without_system_users ETC: comments out "!include auth-system.conf.ext" in Debian's
# ETC/conf.d/10-auth.conf, as the install notes of dovecot/proxy-lua.conf and dovecot/backend.conf
# say: PAM and /etc/passwd must not answer for mail users. A restarted container runs this again
# on its own /etc, where the line is already commented out; a file with neither form means
# Debian's layout changed, which must stop the container rather than leave PAM answering.
without_system_users() {
  auth=$1/conf.d/10-auth.conf
  if grep -q '^!include auth-system.conf.ext' "$auth"; then
    perl -pi -e 's/^(!include auth-system\.conf\.ext)/#$1/' "$auth"
  elif ! grep -q '^#!include auth-system.conf.ext' "$auth"; then
    echo "$auth has no '!include auth-system.conf.ext' line; update docker/" >&2
    exit 1
  fi
}
