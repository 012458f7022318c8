#!/usr/bin/env bash
# Builds the Debian 12 package pulsegate_<version>_<arch>.deb:
#   bash scripts/build-deb.sh
#       installs missing build packages (scripts/lib.sh), configures build-deb/
#       (--prefix=/usr --sysconfdir=/etc --buildtype=release, Debian's
#       hardening flags), builds the daemon and writes
#       build-deb/pulsegate_<version>_<arch>.deb;
#   bash scripts/build-deb.sh --build-dir DIR [--out-dir OUT]
#       packages what DIR has already built, as it is: no compile, no
#       reconfigure (test/install/deb_test.sh packages the CI build this way).
# --out-dir: where the .deb goes (default: the build dir). The last line
# printed is the .deb's path. Needs dpkg-dev (dpkg-shlibdeps) and binutils.
# Maintainer: $DEBFULLNAME <$DEBEMAIL> when set.
#
# How: `meson install --destdir` into a staging dir, then every installed
# file moves to its Debian path by where meson put it: <sysconfdir>/X ->
# /etc/X, <prefix>/lib/systemd/system/X -> /lib/systemd/system/X (Debian 12's
# place for units, as dh_installsystemd), any other <prefix>/X -> /usr/X. So
# meson's install rules (etc/meson.build) stay the one list of what is
# installed, and any build dir packages alike: nothing in the binary depends
# on the prefix (the unit hard-codes /usr/bin/pulsegate and
# /etc/pulsegate/pulsegate.toml; the configuration has no paths). A file
# meson installs outside the prefix and sysconfdir stops the build rather than
# being left out. ELF files are stripped (no -dbgsym package), Depends comes
# from dpkg-shlibdeps (the installed libraries' symbols files) plus adduser,
# the maintainer scripts and the copyright file from packaging/deb/.
set -euo pipefail
umask 022
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"

die() { echo "build-deb: $*" >&2; exit 1; }
usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }

build_dir='' out_dir=''
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; build_dir=$2; shift 2 ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --out-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; out_dir=$2; shift 2 ;;
    --out-dir=*) out_dir=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir"
  out_dir=$(cd "$out_dir" && pwd)
fi

if [ -z "$build_dir" ]; then
  cd "$top"
  pg_install_missing
  pg_npm_ci
  build_dir=$top/build-deb
  # Debian's hardening flags (fortify, stack protector, relro + bindnow),
  # without its -g -O2: the release build type sets the optimisation.
  export DEB_BUILD_MAINT_OPTIONS=hardening=+all DEB_CXXFLAGS_MAINT_STRIP="-g -O2"
  CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS) CXXFLAGS=$(dpkg-buildflags --get CXXFLAGS) \
    LDFLAGS=$(dpkg-buildflags --get LDFLAGS) \
    pg_setup "$build_dir" --prefix=/usr --sysconfdir=/etc --buildtype=release
  # Only the daemon: `meson install` needs nothing else (not the tests).
  ninja -C "$build_dir" -j"${JOBS:-2}" daemon/pulsegate
else
  [ -d "$build_dir" ] || die "no build dir $build_dir"
  build_dir=$(cd "$build_dir" && pwd)
  [ -f "$build_dir/build.ninja" ] || die "$build_dir is not a configured meson build dir"
  [ -x "$build_dir/daemon/pulsegate" ] || die "$build_dir has no daemon/pulsegate: build it first (ninja -C $build_dir daemon/pulsegate)"
fi
out_dir=${out_dir:-$build_dir}
for tool in dpkg-deb dpkg-shlibdeps strip md5sum gzip python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: sudo apt-get install dpkg-dev binutils"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(meson introspect "$build_dir" --projectinfo | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
# prefix and the absolute sysconfdir, one a line.
{ read -r prefix; read -r etc; } < <(meson introspect "$build_dir" --buildoptions | python3 -c '
import json, os, sys
o = {o["name"]: o["value"] for o in json.load(sys.stdin)}
print(o["prefix"])
print(os.path.join(o["prefix"], o["sysconfdir"]))')

# Staged where dpkg-shlibdeps expects a package's files: debian/<package>/.
src=$work/src
pkg=$src/debian/pulsegate
meson install -C "$build_dir" --no-rebuild --quiet --destdir "$work/meson" >/dev/null
[ -z "$(find "$work/meson" ! -type f ! -type d)" ] || die "meson installs something other than files and directories"
while IFS= read -r -d '' f; do
  path=${f#"$work/meson"}
  case $path in
    "$etc"/*) dest=/etc/${path#"$etc"/} ;;
    "$prefix"/lib/systemd/system/*) dest=/lib/systemd/system/${path#"$prefix"/lib/systemd/system/} ;;
    "$prefix"/*) dest=/usr/${path#"$prefix"/} ;;
    *) die "meson installs $path, outside $prefix and $etc: the package has no place for it" ;;
  esac
  mode=0644
  [ -x "$f" ] && mode=0755
  install -D -m "$mode" "$f" "$pkg$dest"
  if [ "$(head -c4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
    # As dh_strip does for executables.
    strip --remove-section=.comment --remove-section=.note "$pkg$dest"
  fi
done < <(find "$work/meson" -type f -print0)
[ -x "$pkg/usr/bin/pulsegate" ] || die "meson did not install bin/pulsegate"

# /usr/share/doc/pulsegate: copyright and a changelog, as Debian policy
# expects of every package (a native package: changelog.gz). Dates come from
# SOURCE_DATE_EPOCH, else the last commit, so a rebuild of a commit is
# byte-identical (dpkg-deb clamps file times to it too).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
maintainer="${DEBFULLNAME:-pulsegate maintainers} <${DEBEMAIL:-maintainers@pulsegate.invalid}>"
doc=$pkg/usr/share/doc/pulsegate
install -D -m 0644 "$top/packaging/deb/copyright" "$doc/copyright"
printf 'pulsegate (%s) unstable; urgency=medium\n\n  * Built by scripts/build-deb.sh from commit %s.\n\n -- %s  %s\n' \
  "$version" "$commit" "$maintainer" "$(LC_ALL=C date -R -u -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Depends: the packages of the binary's shared libraries, with the minimal
# versions their symbols files give for the symbols it uses; adduser for the
# postinst where systemd-sysusers is absent.
mkdir -p "$src/debian"
printf 'Source: pulsegate\n\nPackage: pulsegate\nArchitecture: any\n' > "$src/debian/control"
shlibs=$(cd "$src" && dpkg-shlibdeps -O -e"$pkg/usr/bin/pulsegate" 2>"$work/shlibdeps.err") \
  || die "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.err")"
shlibs=${shlibs#shlibs:Depends=}
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library packages: $(cat "$work/shlibdeps.err")"
rm -f "$src/debian/control"

mkdir -p "$pkg/DEBIAN"
for s in postinst prerm postrm; do
  install -m 0755 "$top/packaging/deb/$s" "$pkg/DEBIAN/$s"
done
# Every file under /etc is a conffile: dpkg keeps local changes on upgrade.
(cd "$pkg" && find etc -type f | sed 's|^|/|' | LC_ALL=C sort) > "$pkg/DEBIAN/conffiles"
# md5sums of the other files (as dh_md5sums: conffiles are checked apart).
(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
   | LC_ALL=C sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
# KiB, counted as dpkg-gencontrol does: each file rounded up, 1 per directory.
installed_size=$(cd "$pkg" && find . -path ./DEBIAN -prune -o ! -path . -printf '%y %s\n' \
  | awk '{ n += ($1 == "f") ? int(($2 + 1023) / 1024) : 1 } END { print n }')
cat > "$pkg/DEBIAN/control" <<EOF
Package: pulsegate
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser
Section: net
Priority: optional
Description: edge MQTT broker and rules engine for IoT gateways
 pulsegate is one daemon for IoT edge gateways: an MQTT 3.1.1 / 5.0 broker
 whose topic tree is partitioned by tenant, a telemetry store, a rules
 engine (threshold and heartbeat rules, alerts with acknowledge, escalation
 and silences), alert delivery by webhook, SNMP, email and MQTT, and a web
 UI with live dashboards.
 .
 The package runs it as the systemd service pulsegate (user pulsegate, data
 in /var/lib/pulsegate, configuration in /etc/pulsegate/pulsegate.toml).
EOF

deb=$out_dir/pulsegate_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
