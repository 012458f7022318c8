#!/usr/bin/env bash
# Runs every test and prints one summary line "N passed, M failed":
#   1. installs missing Debian packages (scripts/lib.sh) and the web UI's
#      npm libraries (npm ci, webui/ui/package-lock.json);
#   2. build/       : every suite (meson test);
#   3. build-asan/  : unit + integration suites under ASan + UBSan;
#   4. build-fuzz/  : (when test/fuzz/ exists) each fuzz target, clang +
#                     libFuzzer, 60 s from the seed corpus test/fuzz/corpus;
#   5. counts: a doctest executable counts its test cases (one executable of
#      40 cases = 40), any other meson test counts 1, a build failure or a fuzz
#      run counts 1, a failed npm ci counts 1.
# Exit status: 0 only if nothing failed. Used by .ci/run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

JOBS=${JOBS:-2}
results=$(mktemp)   # lines: "log <testlog.json>" | "pass <what>" | "fail <what>"
fuzz_work=$(mktemp -d)
trap 'rm -rf "$results" "$fuzz_work"' EXIT

if ! pg_install_missing; then
  echo "0 passed, 1 failed"
  exit 1
fi

# run_suites DIR [meson test args...]: builds DIR and runs its tests.
run_suites() {
  local dir=$1; shift
  rm -f "$dir/meson-logs/testlog.json"
  if ! ninja -C "$dir" -j"$JOBS"; then
    pg_log "build failed in $dir"
    echo "fail build $dir" >>"$results"
    return
  fi
  pg_log "meson test -C $dir $*"
  meson test -C "$dir" --print-errorlogs "$@"
  if [ -f "$dir/meson-logs/testlog.json" ]; then
    echo "log $dir/meson-logs/testlog.json" >>"$results"
  else
    echo "fail meson test in $dir" >>"$results"
  fi
}

# The web UI's libraries (npm ci): meson setup needs them. A failure is
# counted, and the setups below then fail and are counted too.
if ! pg_npm_ci; then
  echo "fail npm ci" >>"$results"
fi

# ---- 2. every suite ----------------------------------------------------------
if pg_setup build; then
  run_suites build
else
  echo "fail meson setup build" >>"$results"
fi

# ---- 3. sanitizers -----------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# -O1 (what ASan's authors recommend) and line tables only (-g1: file:line
# in every report): compiling this tree at -O2 -g under the sanitizers took
# 26 of CI's 47 minutes; -O1 -g1 compiles about 2.5x faster.
if pg_setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false \
    -Doptimization=1 -Dcpp_args=-g1; then
  run_suites build-asan --suite unit --suite integration --timeout-multiplier 3
else
  echo "fail meson setup build-asan" >>"$results"
fi

# ---- 4. fuzzing --------------------------------------------------------------
if [ -f test/fuzz/meson.build ]; then
  if CC=clang CXX=clang++ pg_setup build-fuzz -Dfuzz=true -Db_lundef=false; then
    # The libFuzzer executables (named *_fuzz) defined in test/fuzz/, as
    # "name<TAB>path"; helpers such as make_corpus are left out.
    mapfile -t fuzzers < <(meson introspect --targets build-fuzz | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and "/test/fuzz/" in t["defined_in"] and t["name"].endswith("_fuzz"):
        for f in t["filename"]:
            print(t["name"] + "\t" + f)
')
    if [ "${#fuzzers[@]}" -eq 0 ]; then
      pg_log "test/fuzz defines no executable; nothing to fuzz"
    fi
    for entry in "${fuzzers[@]}"; do
      name=${entry%%$'\t'*}
      exe=${entry#*$'\t'}
      if ! ninja -C build-fuzz -j"$JOBS" "$(realpath --relative-to=build-fuzz "$exe")"; then
        echo "fail build fuzz $name" >>"$results"
        continue
      fi
      corpus=test/fuzz/corpus
      [ -d "test/fuzz/corpus/$name" ] && corpus=test/fuzz/corpus/$name
      # New inputs go to a scratch directory (first argument), never into the
      # checked-in seed corpus; a crash input is kept in build-fuzz/.
      mkdir -p "$fuzz_work/$name"
      seeds=()
      [ -d "$corpus" ] && seeds=("$corpus")
      pg_log "fuzzing $name for 60 s (seeds: ${seeds[*]:-none})"
      if timeout 300 "$exe" -max_total_time=60 -print_final_stats=1 -rss_limit_mb=2048 \
          -artifact_prefix=build-fuzz/ \
          "$fuzz_work/$name" "${seeds[@]}" </dev/null; then
        echo "pass fuzz $name" >>"$results"
      else
        echo "fail fuzz $name" >>"$results"
      fi
    done
  else
    echo "fail meson setup build-fuzz" >>"$results"
  fi
fi

# ---- 5. count ----------------------------------------------------------------
python3 - "$results" <<'PY'
import json, re, sys

summary = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
passed = failed = 0
failures = []
digests = []
# doctest's failure lines and the sanitizers' verdicts.
telling = re.compile(r"TEST CASE:|ERROR:|values:|logged:|Sanitizer|runtime error|SUMMARY:|what\(\)")

def digest(test, most=24, width=240, logged_lines=6):
    # A "logged:" message often runs over several lines (a child's output):
    # keep its first few.
    lines, follow = [], 0
    for l in (test.get("stdout") or "").splitlines():
        if telling.search(l):
            lines.append(l.strip())
            follow = logged_lines if "logged:" in l else 0
        elif follow and l.strip():
            lines.append("  " + l.strip())
            follow -= 1
        else:
            follow = 0
    head = [f"--- {test.get('name')}: {test.get('result')}"]
    return head + [l[:width] for l in lines[:most]] + ([f"... {len(lines) - most} more"] if len(lines) > most else [])

with open(sys.argv[1]) as results:
    entries = [line.rstrip("\n").split(" ", 1) for line in results if line.strip()]

for kind, what in entries:
    if kind == "pass":
        passed += 1
    elif kind == "fail":
        failed += 1
        failures.append(what)
    elif kind == "log":
        with open(what) as log:
            for line in log:
                if not line.strip():
                    continue
                test = json.loads(line)
                result = test.get("result")
                if result == "SKIP":
                    continue
                ok = result in ("OK", "EXPECTEDFAIL")
                last = None
                for last in summary.finditer(test.get("stdout") or ""):
                    pass
                if last:
                    passed += int(last.group(2))
                    failed += int(last.group(3))
                    # Crashed, leaked or timed out after printing its summary.
                    if not ok and int(last.group(3)) == 0:
                        failed += 1
                elif ok:
                    passed += 1
                else:
                    failed += 1
                if not ok:
                    failures.append(f"{test.get('name')} ({result}) in {what}")
                    digests.append(digest(test))

# What failed, in a few lines each, just above the summary: a CI log is
# often read from its tail only.
for d in digests:
    for line in d:
        print(f"  {line}", file=sys.stderr)
for f in failures:
    print(f"FAILED: {f}", file=sys.stderr)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
