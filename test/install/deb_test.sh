#!/usr/bin/env bash
# The Debian package (scripts/build-deb.sh) of an already-built BUILD_DIR,
# never rebuilt nor reconfigured: its metadata (Depends from the binary's
# libraries, conffiles), every file at its Debian path and nothing else, then
# a real `dpkg -i` into a scratch root (dpkg --root with a fresh database,
# maintainer scripts run chrootless with DPKG_ROOT, so this needs no root and
# touches nothing outside the scratch root): the postinst creates the user
# and enables the unit there, the installed binary runs, validates the
# installed configuration and serves until SIGTERM; systemd accepts the
# unit; remove keeps the configuration, purge removes it and keeps the data.
# Usage: deb_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# What the last dpkg said, without its complaints about the dependencies the
# scratch database does not have.
dpkg_said() { grep -v -e ' depends on ' -e ' is not installed\.$' -e 'however:$' -e 'dependency problems' "$work/dpkg.out" || true; }

for tool in dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool is missing (sudo apt-get install dpkg-dev)"
done

# --- build ---------------------------------------------------------------
bash "$top/scripts/build-deb.sh" --build-dir "$build" --out-dir "$work" > "$work/build.out" 2>&1 \
  || fail "scripts/build-deb.sh: $(cat "$work/build.out")"
deb=$(tail -n1 "$work/build.out")
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
[ "$deb" = "$work/pulsegate_${version}_${arch}.deb" ] || fail "unexpected package path: $deb"
[ -f "$deb" ] || fail "no package at $deb"

# --- metadata ------------------------------------------------------------
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = pulsegate ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), expected $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture), expected $arch"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Description)" ] || fail "no Description"
depends=$(field Depends)
echo "Depends: $depends"
for p in 'libc6 (>= ' 'libstdc++6' 'libpaho-mqttpp3-' 'libpaho-mqtt1' 'liblmdb0' 'libsqlite3-0' 'libssl3' 'adduser'; do
  grep -qF "$p" <<<"$depends" || fail "Depends does not name $p: $depends"
done
grep -q -- '-dev\b' <<<"$depends" && fail "Depends names a -dev package: $depends"

dpkg-deb --control "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = /etc/pulsegate/pulsegate.toml ] \
  || fail "conffiles: $(cat "$work/control/conffiles")"
for s in postinst prerm postrm; do
  [ -x "$work/control/$s" ] || fail "no executable DEBIAN/$s"
  sh -n "$work/control/$s" || fail "DEBIAN/$s: syntax error"
done

# Exactly these files (directories aside), owned by root, the binary
# executable and stripped, everything else 0644.
expected='./etc/pulsegate/pulsegate.toml
./lib/systemd/system/pulsegate.service
./usr/bin/pulsegate
./usr/lib/sysusers.d/pulsegate.conf
./usr/share/doc/pulsegate/README.md
./usr/share/doc/pulsegate/changelog.gz
./usr/share/doc/pulsegate/copyright
./usr/share/snmp/mibs/PULSEGATE-MIB.txt'
dpkg-deb --contents "$deb" > "$work/contents"
actual=$(awk '$1 !~ /^d/ { print $6 }' "$work/contents" | LC_ALL=C sort)
echo "packaged: $(paste -sd" " <<<"$actual")"
[ "$actual" = "$expected" ] || fail "package contents differ (< expected, > packaged):
$(diff <(echo "$expected") <(echo "$actual") | grep '^[<>]')"
awk '$2 != "root/root" { bad = bad " " $6 } END { if (bad != "") { print "not owned by root:" bad; exit 1 } }' \
  "$work/contents" >&2 || fail "ownership"
awk '$1 ~ /^-/ && $6 != "./usr/bin/pulsegate" && $1 != "-rw-r--r--" { print; bad = 1 } END { exit bad }' \
  "$work/contents" >&2 || fail "a file is not 0644"
grep -q '^-rwxr-xr-x .* \./usr/bin/pulsegate$' "$work/contents" || fail "usr/bin/pulsegate is not 0755"

# --- dpkg -i into a scratch root -----------------------------------------
root=$work/root
admin=$root/var/lib/dpkg
mkdir -p "$admin/info" "$admin/updates"
: > "$admin/status"
dpkg_root() {
  # --force-depends: the scratch database knows none of the libraries (the
  # host has them: the binary runs from the scratch root below).
  dpkg --root="$root" --admindir="$admin" --log=/dev/null --force-script-chrootless \
    --force-depends --force-not-root "$@"
}
dpkg_root -i "$deb" > "$work/dpkg.out" 2>&1 || fail "dpkg -i: $(dpkg_said)"
dpkg-query --admindir="$admin" -W -f='${Status}' pulsegate | grep -q 'install ok installed' \
  || fail "dpkg -i did not leave pulsegate installed: $(dpkg_said)"
(cd "$root" && md5sum --quiet -c var/lib/dpkg/info/pulsegate.md5sums) || fail "installed files differ from md5sums"
# postinst: the system user (systemd-sysusers, from the packaged sysusers.d
# file) and the unit enabled for the next boot, inside the scratch root.
if command -v systemd-sysusers >/dev/null; then
  grep -q '^pulsegate:x:[0-9]*:[0-9]*:[^:]*:/var/lib/pulsegate:' "$root/etc/passwd" 2>/dev/null \
    || fail "postinst did not create user pulsegate (home /var/lib/pulsegate) in the scratch root: $(dpkg_said)"
fi
[ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/pulsegate.service")" = /lib/systemd/system/pulsegate.service ] \
  || fail "postinst did not enable pulsegate.service in the scratch root"

# --- the installed binary ------------------------------------------------
bin=$root/usr/bin/pulsegate
conf=$root/etc/pulsegate/pulsegate.toml
if readelf -S "$bin" | grep -q '\.debug_info'; then fail "usr/bin/pulsegate is not stripped"; fi
[ "$("$bin" version)" = "pulsegate $version" ] || fail "the installed binary prints '$("$bin" version)', expected 'pulsegate $version'"
out=$("$bin" check-config --config "$conf" --quiet 2>&1) || fail "the installed configuration is invalid: $out"
[ -z "$out" ] || fail "check-config --quiet printed: $out"

# serve, as the unit runs it (data dir from the environment), on free ports:
# initialises the empty data dir, logs its listeners, stops on SIGTERM.
data=$work/data
PULSEGATE_STORAGE_DATA_DIR=$data PULSEGATE_MQTT_LISTEN=127.0.0.1:0 PULSEGATE_HTTP_LISTEN=127.0.0.1:0 \
  "$bin" serve --config "$conf" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  grep -q 'msg="listening" proto=mqtt' "$work/serve.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'msg="listening" proto=mqtt' "$work/serve.log" \
  || fail "the installed binary did not log its MQTT listener within 30 s: $(cat "$work/serve.log")"
[ -f "$data/state.db" ] || fail "serve did not initialise $data"
grep 'msg="listening"' "$work/serve.log"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "serve exited $rc after SIGTERM: $(tail -n 20 "$work/serve.log")"

# --- the packaged unit as systemd reads it -------------------------------
unit=$work/pulsegate.service
sed "s|/usr/bin/pulsegate|$bin|g" "$root/lib/systemd/system/pulsegate.service" > "$unit"
if command -v systemd-analyze >/dev/null; then
  # Its exit status also reflects the host (a container without systemd
  # running): judge by what it says about the unit.
  out=$(systemd-analyze verify "$unit" 2>&1) || true
  if grep -Ei 'unknown (key|section|lvalue)|failed to parse|invalid|command .* failed|missing' <<<"$out"; then
    fail "systemd-analyze verify: $out"
  fi
fi

# --- remove, then purge --------------------------------------------------
mkdir -p "$root/var/lib/pulsegate"
echo data > "$root/var/lib/pulsegate/state.db"
dpkg_root -r pulsegate > "$work/dpkg.out" 2>&1 || fail "dpkg -r: $(dpkg_said)"
[ ! -e "$bin" ] || fail "dpkg -r left usr/bin/pulsegate"
[ -f "$conf" ] || fail "dpkg -r removed the conffile (only purge should)"
touch "$root/etc/pulsegate/server.key"   # a file of the administrator's: purge removes it too
dpkg_root -P pulsegate > "$work/dpkg.out" 2>&1 || fail "dpkg -P: $(dpkg_said)"
[ ! -e "$root/etc/pulsegate" ] || fail "dpkg -P left /etc/pulsegate"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/pulsegate.service" ] || fail "dpkg -P left the unit enabled"
[ -f "$root/var/lib/pulsegate/state.db" ] || fail "dpkg -P removed the data in /var/lib/pulsegate"
grep -q 'kept the data in /var/lib/pulsegate' "$work/dpkg.out" || fail "dpkg -P did not say it kept the data: $(dpkg_said)"
echo "ok"
