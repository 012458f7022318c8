#!/usr/bin/env bash
# `meson install` into a scratch root: every file lands where the unit and
# the README say, the installed binary runs, validates the installed
# configuration (and refuses a broken one), and systemd accepts the unit.
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$root" >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
print({o["name"]: o["value"] for o in json.load(sys.stdin)}["prefix"])')
sysconfdir=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
print({o["name"]: o["value"] for o in json.load(sys.stdin)}["sysconfdir"])')
case $sysconfdir in /*) etc=$root$sysconfdir ;; *) etc=$root$prefix/$sysconfdir ;; esac

bin=$root$prefix/bin/pulsegate
for f in "$bin" "$etc/pulsegate/pulsegate.toml" "$root$prefix/lib/systemd/system/pulsegate.service" \
         "$root$prefix/lib/sysusers.d/pulsegate.conf" "$root$prefix/share/snmp/mibs/PULSEGATE-MIB.txt" \
         "$root$prefix/share/doc/pulsegate/README.md"; do
  [ -e "$f" ] || fail "not installed: ${f#$root}"
done
echo "installed: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"

"$bin" version | grep -q '^pulsegate ' || fail "the installed binary does not print its version"
"$bin" check-config --config "$etc/pulsegate/pulsegate.toml" --quiet || fail "the installed configuration is invalid"
[ -z "$("$bin" check-config --config "$etc/pulsegate/pulsegate.toml" --quiet)" ] || fail "--quiet printed something"
bad=$root/bad.toml
printf '[mqtt]\nreceive_maximum = 0\n' > "$bad"
if out=$("$bin" check-config --config "$bad" 2>&1); then fail "check-config accepted receive_maximum = 0"; fi
grep -q 'receive_maximum' <<<"$out" || fail "check-config's error does not name the key: $out"
printf '[tls]\ncert = "%s/none.pem"\nkey = "%s/none.key"\n' "$root" "$root" > "$bad"
if out=$("$bin" check-config --config "$bad" 2>&1); then fail "check-config accepted missing TLS files"; fi
grep -q 'none.pem' <<<"$out" || fail "check-config's TLS error does not name the file: $out"

# The unit as systemd reads it (ExecStart must exist: point it at the
# installed binary).
unit=$root/pulsegate.service
sed "s|/usr/bin/pulsegate|$bin|g" "$root$prefix/lib/systemd/system/pulsegate.service" > "$unit"
if command -v systemd-analyze >/dev/null; then
  # Its exit status also reflects the host (a container without systemd
  # running): judge by what it says about the unit.
  out=$(systemd-analyze verify "$unit" 2>&1) || true
  if grep -Ei 'unknown (key|section|lvalue)|failed to parse|invalid|command .* failed|missing' <<<"$out"; then
    fail "systemd-analyze verify: $out"
  fi
fi
echo "ok"
