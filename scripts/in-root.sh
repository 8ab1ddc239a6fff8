#!/bin/sh
# Runs one program inside a prepared Debian root (the debian13 peer set) with chroot.
#
#   in-root.sh ROOT USERSPEC CHDIR [DIR...] -- CMD [ARG...]
#
# It first re-executes itself under `unshare --mount` (same PID): every mount made here lives in
# that private mount namespace, is invisible to the host, and is gone when the last process in
# it exits, also when the test that started it was killed. Nothing is ever mounted in the
# host's namespace, so there is nothing to undo there.
#
# Mounted into ROOT: /proc, /dev (recursively: /dev/pts, /dev/shm), /etc/hosts, and each DIR at the same
# path, so paths mean the same inside and outside (temp dirs, the checkout's fixtures). DIR may
# end in ":ro" for a read-only bind. Then chroot ROOT, as USERSPEC (UID:GID, or empty for root),
# cd to CHDIR (or /), and exec CMD: the PID the caller spawned becomes the program itself, so it
# can be signalled and waited for by PID like any other peer.
set -eu

# $$ survives exec, so the marker says "this very process already re-executed itself", and it
# carries the mount namespace the process had before: the one it must not mount into.
case "${MAILHOSTD_IN_ROOT_NS:-}" in
  "$$:"*) before=${MAILHOSTD_IN_ROOT_NS#*:} ;;
  *) MAILHOSTD_IN_ROOT_NS="$$:$(readlink /proc/self/ns/mnt)" exec unshare --mount --propagation private -- sh "$0" "$@" ;;
esac
unset MAILHOSTD_IN_ROOT_NS

root=$1
userspec=$2
chdir=$3
shift 3

[ -f "$root/.mailhostd-peer-root.json" ] || [ "${MAILHOSTD_IN_ROOT_BUILDING:-}" = 1 ] || {
  echo "in-root.sh: $root is not a prepared peer root (run: node scripts/install-peers.mjs as root)" >&2
  exit 125
}

# Refuse to mount unless this process now has a mount namespace of its own: the mounts would
# land on the host. (Compared with its own namespace before unshare, not with PID 1's or the
# caller's: PID 1's may be unreadable, as under gVisor, and a caller may be gone by now. An empty
# answer never passes for "different".)
own=$(readlink /proc/self/ns/mnt || true)
if [ -z "$own" ] || [ -z "$before" ] || [ "$own" = "$before" ]; then
  echo "in-root.sh: not in a mount namespace of its own (now: '$own', before: '$before'); refusing to mount" >&2
  exit 125
fi

mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
# The machine's own names: without them every program that resolves the host name (Postfix's
# myhostname, for one) asks DNS for it and waits for the answer, a second per postmap call.
# (A root fresh from debootstrap has no /etc/hosts yet: netbase, installed next, makes one.)
[ -e "$root/etc/hosts" ] || : > "$root/etc/hosts"
mount --bind -o ro /etc/hosts "$root/etc/hosts"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  dir=${1%:ro}
  mkdir -p "$root$dir"
  if [ "$dir" != "$1" ]; then
    mount --bind -o ro "$dir" "$root$dir"
  else
    mount --bind "$dir" "$root$dir"
  fi
  shift
done
[ "$#" -gt 0 ] && shift

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -n "$userspec" ]; then
  exec chroot --userspec="$userspec" "$root" /usr/bin/env --chdir="${chdir:-/}" "$@"
fi
exec chroot "$root" /usr/bin/env --chdir="${chdir:-/}" "$@"
