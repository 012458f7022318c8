# Shared by scripts/test.sh and scripts/run.sh (sourced, not run).

# Debian 12 packages the build, the tests and the tools need. Boost comes as
# libboost1.81-dev (+ json, url), never libboost-dev (1.74, conflicts).
PG_PACKAGES=(
  meson ninja-build pkg-config g++ clang libclang-rt-14-dev python3
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libpaho-mqttpp-dev libpaho-mqtt-dev libmosquitto-dev mosquitto mosquitto-clients
  doctest-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev
  liblmdb-dev libsqlite3-dev libsodium-dev libssl-dev
  libcurl4-openssl-dev curl libsnmp-dev snmptrapd snmp python3-aiosmtpd openssl
  libhowardhinnant-date-dev tzdata chromium
  dpkg-dev   # scripts/build-deb.sh: dpkg-shlibdeps, dpkg-buildflags
)

pg_log() { printf '==> %s\n' "$*" >&2; }

# Installs whatever of PG_PACKAGES is missing; does nothing (and needs no
# root) when everything is there. npm (for the web UI's libraries, see
# pg_npm_ci) counts as there when it is on PATH, whatever installed it (CI
# has Node 20 + npm from nodejs.org); otherwise Debian's nodejs and npm.
pg_install_missing() {
  local missing=() p
  for p in "${PG_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  [ "${#missing[@]}" -eq 0 ] && return 0
  pg_log "installing missing packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { pg_log "not root and no sudo: install ${missing[*]} yourself"; return 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}" </dev/null
}

# pg_setup DIR [meson options...]: configures DIR unless it already is.
pg_setup() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    pg_log "meson setup $dir $*"
    meson setup "$dir" "$@"
  fi
}

# Fetches the web UI's libraries (webui/ui/package-lock.json) into
# webui/ui/node_modules/, which meson embeds into the binary (and refuses to
# configure without), and the browser tests' (test/browser: playwright-core,
# which drives Debian's chromium). Runs `npm ci` only when node_modules is missing or
# older than the lockfile; `npm ci` installs exactly what the lockfile says.
pg_npm_ci() {
  local dir
  for dir in webui/ui test/browser; do
    if [ -d "$dir/node_modules" ] && [ ! "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      continue
    fi
    pg_log "npm ci --prefix $dir"
    # npm ci keeps node_modules' old mtime when nothing changed: touch it so
    # the next run sees it up to date.
    npm ci --prefix "$dir" --no-audit --no-fund && touch "$dir/node_modules" || return 1
  done
}
