#!/usr/bin/env bash
# Benchmarks `docker-credential-keygate get` answered from a cached, fresh
# token, in its two possible shapes: the front program (git-credential-keygate
# run under Docker's name, what install.sh links on Linux) and keygate
# itself under Docker's name (what install.sh links elsewhere), with a
# helper that only copies a ready answer (bench/floor.c) as the floor.
# Timed interleaved like bench/credential.sh (bench/interleave.c); see
# bench/README.md.
#
# Environment knobs: KEYGATE_BIN, CARGO_TARGET_DIR, RUNS, WARMUP, SEED,
# KEEP_TMP, as for bench/credential.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-500}
WARMUP=${WARMUP:-20}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

command -v python3 >/dev/null || die "python3 is needed to compute the ratios"
PYTHON=$(command -v python3)
command -v git >/dev/null || die "git is needed (keygate reads its config through git)"
if ! command -v cc >/dev/null; then
  apt_install gcc libc6-dev || die "a C compiler (cc) is needed to build the runner (bench/interleave.c); install gcc"
fi

find_keygate
[ -x "$KEYGATE_FRONT" ] || die "no git-credential-keygate beside $KEYGATE_BIN (install.sh installs both)"

T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-bench-docker.XXXXXX")
trap remove_tmp EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/home" "$T/data" "$T/config" "$T/bin" "$T/tools" "$T/front" "$T/itself"
install -d -m 0700 "$T/run"

BASE_ENV=(
  HOME="$T/home"
  PATH="$T/bin:$(dirname "$(command -v git)"):/usr/bin:/bin"
  LC_ALL=C
  GIT_CONFIG_NOSYSTEM=1
  GIT_CONFIG_GLOBAL="$T/gitconfig"
  XDG_DATA_HOME="$T/data"
  XDG_CONFIG_HOME="$T/config"
  XDG_RUNTIME_DIR="$T/run"
  KEYGATE_STORE=file
)
clean() { env -i "${BASE_ENV[@]}" "$@"; }

cc -O2 -static -o "$T/tools/interleave" "$ROOT/bench/interleave.c" 2>/dev/null ||
  cc -O2 -o "$T/tools/interleave" "$ROOT/bench/interleave.c" ||
  die "could not compile bench/interleave.c"
FLOOR="$T/tools/docker-credential-floor"
cc -O2 -static -o "$FLOOR" "$ROOT/bench/floor.c" 2>/dev/null ||
  cc -O2 -o "$FLOOR" "$ROOT/bench/floor.c" ||
  die "could not compile bench/floor.c"
cd "$T/home"

# The two shapes, each a link named as Docker runs it.
ln -s "$KEYGATE_FRONT" "$T/front/docker-credential-keygate"
ln -s "$KEYGATE_BIN" "$T/itself/docker-credential-keygate"

# A registry sharing a forge's login, and a fresh token for the forge.
REGISTRY=registry.example.com
SERVER=https://git.example.com
NOW=$(date +%s)
TOKEN=$("$PYTHON" -c 'import secrets; print("kgat_" + secrets.token_urlsafe(1900))')
RECORD=$(printf '{"server":"%s","account":"","access_token":"%s","token_type":"bearer","expires_at":%d,"obtained_at":%d,"refresh_token":"r","scopes":["repo"],"grant":"code"}' \
  "$SERVER" "$TOKEN" "$((NOW + 7200))" "$NOW")
install -d -m 0700 "$T/data/keygate"
(umask 077 && printf '{"version":1,"accounts":[%s]}\n' "$RECORD" >"$T/data/keygate/tokens.json")
clean git config --file "$T/gitconfig" "keygate.$SERVER.clientId" bench
clean git config --file "$T/gitconfig" "keygate.$SERVER.authUrl" "$SERVER/oauth/authorize"
clean git config --file "$T/gitconfig" "keygate.$SERVER.tokenUrl" "$SERVER/oauth/token"
clean git config --file "$T/gitconfig" "keygate.https://$REGISTRY.tokensFrom" "$SERVER"
clean git config --file "$T/gitconfig" "keygate.https://$REGISTRY.username" oauth2

printf '%s' "$REGISTRY" >"$T/req-main"
printf '%s' "unrelated.example.org" >"$T/req-other"
ANSWER=$(printf '{"ServerURL":"%s","Username":"oauth2","Secret":"%s"}' "$REGISTRY" "$TOKEN")
(umask 077 && printf '%s\n' "$ANSWER" >"$T/floor-answer")

# Each shape once, untimed: the token for the registry, "not found" elsewhere.
for shape in front itself; do
  out=$(clean "$T/$shape/docker-credential-keygate" get <"$T/req-main") ||
    die "$shape: get failed"
  [ "$out" = "$ANSWER" ] || die "$shape: get did not answer the seeded token"
  rc=0
  out=$(clean "$T/$shape/docker-credential-keygate" get <"$T/req-other") || rc=$?
  [ "$rc" = 1 ] && [ "$out" = "credentials not found in native keychain" ] ||
    die "$shape: an unconfigured registry was not 'not found' (exit $rc)"
  echo "   ok: $shape answers the token, and 'not found' for another registry" >&2
done

SPEC="$T/docker.spec"
: >"$SPEC"
row() { # row NAME STDIN PROGRAM [ARGS...]
  local name=$1 input=$2
  shift 2
  { printf 'row %s\nstdin %s\n' "$name" "$input"; printf 'arg %s\n' "$@"; } >>"$SPEC"
}
row "floor helper (ref)" "$T/req-main" "$FLOOR" "$T/floor-answer" get
row "front program, fresh token" "$T/req-main" "$T/front/docker-credential-keygate" get
row "keygate itself, fresh token" "$T/req-main" "$T/itself/docker-credential-keygate" get
row "front program, unconfigured registry" "$T/req-other" "$T/front/docker-credential-keygate" get
row "keygate itself, unconfigured registry" "$T/req-other" "$T/itself/docker-credential-keygate" get

say "timing: $(grep -c '^row ' "$SPEC") rows, $WARMUP warmup + $RUNS rounds, interleaved"
seed=()
[ -z "${SEED:-}" ] || seed=(SEED="$SEED")
env -i "${BASE_ENV[@]}" "${seed[@]}" "$T/tools/interleave" "$SPEC" "$WARMUP" "$RUNS" \
  >"$T/docker.tsv" 2>"$T/docker.tsv.log" || { cat "$T/docker.tsv.log" >&2; die "the runner failed"; }
cat "$T/docker.tsv.log" >&2
SEED_USED=$(sed -n 's/^interleave: seed \([0-9]*\);.*/\1/p' "$T/docker.tsv.log")

mkdir -p "$RESULTS"
export RESULTS T RUNS WARMUP SEED_USED
KEYGATE_REV=$KEYGATE_REV KEYGATE_VERSION=$("$KEYGATE_BIN" --version) HOSTINFO="$(uname -srm), $(nproc) CPUs" \
  "$PYTHON" - <<'EOF'
import datetime, json, operator, os, random, statistics

env = os.environ
tmp, results = env["T"], env["RESULTS"]
names = [l[4:].rstrip("\n") for l in open(os.path.join(tmp, "docker.spec")) if l.startswith("row ")]
times = [[] for _ in names]
for line in open(os.path.join(tmp, "docker.tsv")):
    row, rnd, ns = map(int, line.split("\t"))
    times[row].append(ns)
base = times[0]
rng = random.Random(int(env["SEED_USED"]))
n = len(base)
draws = [[] for _ in times]
for _ in range(2000):
    pick = operator.itemgetter(*rng.choices(range(n), k=n))
    b = sum(pick(base))
    for d, t in zip(draws, times):
        d.append(sum(pick(t)) / b)
date = f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
lines = [
    "# docker-credential-keygate get: the front program vs keygate itself",
    "",
    f"{date}; {env['KEYGATE_VERSION']} ({env['KEYGATE_REV']}); {env['HOSTINFO']}; interleaved: "
    f"{env['RUNS']} rounds after {env['WARMUP']} warmup rounds, seed {env['SEED_USED']}.",
    "",
    "Ratio = row mean / floor mean, with a 95% paired bootstrap interval (2000 resamples of the rounds).",
    "",
    "| row | mean ± σ (ms) | median (ms) | ratio to floor (means) [95% CI] |",
    "|---|---:|---:|---:|",
]
rows = []
for name, t, d in zip(names, times, draws):
    ms = [x / 1e6 for x in t]
    d.sort()
    ratio = statistics.fmean(t) / statistics.fmean(base)
    ci = [d[49], d[1949]]
    rows.append({"name": name, "mean_ms": statistics.fmean(ms), "median_ms": statistics.median(ms),
                 "stddev_ms": statistics.stdev(ms), "ratio_means": ratio, "ratio_means_ci95": ci})
    lines.append(f"| {name} | {statistics.fmean(ms):.2f} ± {statistics.stdev(ms):.2f} | "
                 f"{statistics.median(ms):.2f} | {ratio:.3f}× [{ci[0]:.3f}–{ci[1]:.3f}] |")
text = "\n".join(lines) + "\n"
with open(os.path.join(results, "docker.md"), "w") as f:
    f.write(text)
with open(os.path.join(results, "docker.json"), "w") as f:
    json.dump({"date": date, "rounds": int(env["RUNS"]), "seed": int(env["SEED_USED"]),
               "rows": [{**r, "times_ns": t} for r, t in zip(rows, times)]}, f)
print()
print(text)
EOF
say "results in $RESULTS (docker.md, docker.json)"
