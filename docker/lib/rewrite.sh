# Sourced by the demo cluster's configuration scripts (docker/*/assemble.sh). They run the
# repository's own postfix/ and dovecot/ files, changed only where a container differs from the
# host those files describe (addresses), the way the test harness rewrites them for loopback
# (test/harness/postfix.ts, dovecot.ts).

# rewrite FILE FROM TO: replace every FROM in FILE (a fixed string, not a pattern) by TO. Fails
# when FILE no longer contains FROM: a shipped file that changed must stop the container, not
# run with the old address silently left in. test/packaging runs every assemble.sh against the
# files the images copy, so such a change fails there first.
rewrite() {
  if ! grep -qF -- "$2" "$1"; then
    echo "$1 no longer contains '$2'; update docker/" >&2
    exit 1
  fi
  # perl (perl-base is part of every Debian system) with the strings in the environment: no
  # quoting of / | & or regex characters to get wrong, as with sed.
  FROM=$2 TO=$3 perl -pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/g' "$1"
}
