#!/usr/bin/env bash
# Benchmarks what cargo pays each time it starts keygate as its credential
# provider for a token keygate holds fresh: cargo keeps a token in memory
# only while more than a minute is left, so with short-lived tokens it
# starts the provider for nearly every registry request. The rows run the
# programs directly, as cargo and git start them (no cargo or git around
# them), interleaved (bench/interleave.c), on the file store:
#
#   cargo-credential-keygate --cargo-plugin
#                               the same through the front program, as
#                               install.sh links cargo's conventional name
#   keygate --cargo-plugin      hello, one `get` for `read`, the answer
#   git-credential-keygate get  git's quick path (the front program)
#   keygate get                 git's `get` answered by keygate itself
#   floor                       bench/floor.c: one process copying an answer
#
# Environment knobs: KEYGATE_BIN, CARGO_TARGET_DIR, RUNS, WARMUP, SEED, as
# bench/credential.sh (see bench/README.md). Writes bench/results/cargo.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-500}
WARMUP=${WARMUP:-20}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

command -v python3 >/dev/null || die "python3 is needed to compute the table"
PYTHON=$(command -v python3)
command -v cc >/dev/null || apt_install gcc libc6-dev || die "a C compiler (cc) is needed for bench/interleave.c"

find_keygate
[ -x "$KEYGATE_FRONT" ] || die "no git-credential-keygate beside $KEYGATE_BIN (install.sh installs both)"

T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-bench-cargo.XXXXXX")
trap remove_tmp EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/home" "$T/data" "$T/config" "$T/tools"
install -d -m 0700 "$T/run"
BASE_ENV=(
  HOME="$T/home" PATH=/usr/bin:/bin LC_ALL=C GIT_CONFIG_NOSYSTEM=1
  GIT_CONFIG_GLOBAL="$T/gitconfig" XDG_DATA_HOME="$T/data" XDG_CONFIG_HOME="$T/config"
  XDG_RUNTIME_DIR="$T/run" KEYGATE_STORE=file
)
clean() { env -i "${BASE_ENV[@]}" "$@"; }

cc -O2 -static -o "$T/tools/interleave" "$ROOT/bench/interleave.c" 2>/dev/null ||
  cc -O2 -o "$T/tools/interleave" "$ROOT/bench/interleave.c" || die "could not compile bench/interleave.c"
FLOOR="$T/tools/floor"
cc -O2 -static -o "$FLOOR" "$ROOT/bench/floor.c" 2>/dev/null ||
  cc -O2 -o "$FLOOR" "$ROOT/bench/floor.c" || die "could not compile bench/floor.c"
cd "$T/home"

# A fresh two-hour token for the registry's origin, in the file store.
SERVER=https://git.example.com
NOW=$(date +%s)
TOKEN=$("$PYTHON" -c 'import secrets; print("kgat_" + secrets.token_urlsafe(1900))')
install -d -m 0700 "$T/data/keygate"
(umask 077 && printf '{"version":1,"accounts":[{"server":"%s","account":"","access_token":"%s","token_type":"bearer","expires_at":%d,"obtained_at":%d,"refresh_token":"kgrt_x","scopes":["repo"],"grant":"code"}]}\n' \
  "$SERVER" "$TOKEN" "$((NOW + 7200))" "$NOW" >"$T/data/keygate/tokens.json")
printf '[keygate "%s"]\n\tclientId = bench\n\tauthUrl = %s/oauth/authorize\n\ttokenUrl = %s/oauth/token\n\tauthType = bearer\n' \
  "$SERVER" "$SERVER" "$SERVER" >"$T/gitconfig"

printf '{"v":1,"registry":{"index-url":"sparse+%s/api/packages/acme/cargo/","name":"acme"},"kind":"get","operation":"read","args":["cargo"]}\n' \
  "$SERVER" >"$T/cargo-req"
printf 'protocol=https\nhost=git.example.com\n\n' >"$T/git-req"
(umask 077 && printf 'username=oauth2\npassword=%s\n' "$TOKEN" >"$T/floor-answer")

# cargo's conventional name, linked to the front as install.sh links it.
ln -s "$KEYGATE_FRONT" "$T/tools/cargo-credential-keygate"

# Every row once, untimed: each must hand out the seeded token, the front
# byte for byte as keygate.
out=$(clean "$KEYGATE_BIN" --cargo-plugin <"$T/cargo-req")
grep -qF "\"token\":\"Bearer $TOKEN\"" <<<"$out" || die "keygate --cargo-plugin did not answer the seeded token"
grep -qF '"cache":"expires"' <<<"$out" || die "keygate --cargo-plugin answered no expiry"
front_out=$(clean "$T/tools/cargo-credential-keygate" --cargo-plugin <"$T/cargo-req")
[ "$front_out" = "$out" ] || die "the front program's cargo answer differs from keygate's"
for program in "$KEYGATE_FRONT" "$KEYGATE_BIN"; do
  clean "$program" get <"$T/git-req" | grep -qxF "password=$TOKEN" || die "$program get did not answer the seeded token"
done
say "every row answers the seeded token; timing $RUNS rounds (after $WARMUP)"

SPEC="$T/spec"
{
  printf 'row cargo-credential-keygate --cargo-plugin (front)\nstdin %s\n' "$T/cargo-req"
  printf 'env %s\n' "${BASE_ENV[@]}"
  printf 'arg %s\narg --cargo-plugin\n' "$T/tools/cargo-credential-keygate"
  printf 'row keygate --cargo-plugin\nstdin %s\n' "$T/cargo-req"
  printf 'env %s\n' "${BASE_ENV[@]}"
  printf 'arg %s\narg --cargo-plugin\n' "$KEYGATE_BIN"
  printf 'row git-credential-keygate get (front)\nstdin %s\n' "$T/git-req"
  printf 'env %s\n' "${BASE_ENV[@]}"
  printf 'arg %s\narg get\n' "$KEYGATE_FRONT"
  printf 'row keygate get\nstdin %s\n' "$T/git-req"
  printf 'env %s\n' "${BASE_ENV[@]}"
  printf 'arg %s\narg get\n' "$KEYGATE_BIN"
  printf 'row floor (one process, ref)\nstdin %s\n' "$T/git-req"
  printf 'arg %s\narg %s\narg get\n' "$FLOOR" "$T/floor-answer"
} >"$SPEC"
"$T/tools/interleave" "$SPEC" "$WARMUP" "$RUNS" >"$T/times.tsv"

mkdir -p "$RESULTS"
"$PYTHON" - "$SPEC" "$T/times.tsv" "$KEYGATE_REV" "$RUNS" >"$RESULTS/cargo.md" <<'EOF'
import statistics, sys, platform, os
spec, times, rev, runs = sys.argv[1:5]
names = [l[4:].strip() for l in open(spec) if l.startswith("row ")]
rows = {}
for line in open(times):
    row, _, ns = line.split("\t")
    rows.setdefault(int(row), []).append(int(ns) / 1e6)
print("# keygate as cargo's credential provider: a cached `get`\n")
print("keygate %s; %s rounds, interleaved; %s, %d CPUs\n" % (rev, runs, platform.platform(), os.cpu_count()))
print("| row | median ms | p10 ms | p90 ms |")
print("| --- | ---: | ---: | ---: |")
for i, name in enumerate(names):
    t = sorted(rows[i])
    q = statistics.quantiles(t, n=10)
    print("| %s | %.3f | %.3f | %.3f |" % (name, statistics.median(t), q[0], q[-1]))
EOF
cat "$RESULTS/cargo.md"
