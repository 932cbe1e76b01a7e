#!/usr/bin/env bash
# Benchmarks `git credential fill` answered from a cached, fresh keygate
# token against git's own `git credential-store`, on this machine. The rows
# are timed interleaved (bench/interleave.c: every round runs each row once,
# in random order), so the machine's drift hits every row alike. See
# bench/README.md.
#
# Environment knobs:
#   KEYGATE_BIN       use this keygate (with the git-credential-keygate
#                     beside it, as install.sh installs them) instead of
#                     building both
#   CARGO_TARGET_DIR  where to build (default: $HOME/.cache/keygate-target)
#   RUNS, WARMUP      timed rounds / warmup rounds (default 500 / 20)
#   SEED              the runner's shuffle seed (default: printed, from the clock)
#   COMPONENTS=0      skip the second run (per-process breakdown)
#   KEEP_TMP=1        keep the throwaway HOME (daemons are stopped anyway)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-500}
WARMUP=${WARMUP:-20}
COMPONENTS=${COMPONENTS:-1}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed to compute the ratios"
PYTHON=$(command -v python3)
GIT=$(command -v git) || die "git is not on PATH"
if ! command -v cc >/dev/null; then
  apt_install gcc libc6-dev || die "a C compiler (cc) is needed to build the runner (bench/interleave.c); install gcc"
fi

# ---------------------------------------------------------------- keygate
find_keygate
[ -x "$KEYGATE_FRONT" ] || die "no git-credential-keygate beside $KEYGATE_BIN (install.sh installs both)"

# ---------------------------------------------------------------- sandbox
T=$(mktemp -d "${TMPDIR:-/tmp}/keygate-bench.XXXXXX")
DBUS_PID=
GKR_PID=
DBUS_ADDR=
cleanup() {
  local pid p
  # Drops the keychain entry and, with it, the token the kernel cache
  # holds in this user's @u (it would otherwise outlive the run by up to
  # an hour).
  if [ -n "$DBUS_ADDR" ] && [ -n "${KEYGATE_BIN:-}" ] && [ -n "${SERVER:-}" ]; then
    clean KEYGATE_STORE=keychain DBUS_SESSION_BUS_ADDRESS="$DBUS_ADDR" timeout 20 \
      "$KEYGATE_BIN" logout "$SERVER" >/dev/null 2>&1 || true
  fi
  for pid in $GKR_PID $DBUS_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $GKR_PID $DBUS_PID; do
    wait "$pid" 2>/dev/null || true
  done
  # Anything the private bus may have activated carries its address.
  if [ -n "$DBUS_ADDR" ]; then
    for p in /proc/[0-9]*; do
      if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR"; then
        kill "${p#/proc/}" 2>/dev/null || true
      fi
    done
  fi
  remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/home" "$T/data" "$T/config" "$T/cache" "$T/bin" "$T/tools"
install -d -m 0700 "$T/run"

# The only PATH anything benchmarked sees: the bare-name symlink first,
# then the directory of the git on the caller's PATH, then the system.
BENCH_PATH="$T/bin:$(dirname "$GIT"):/usr/bin:/bin"
BASE_ENV=(
  HOME="$T/home"
  PATH="$BENCH_PATH"
  LC_ALL=C
  GIT_CONFIG_NOSYSTEM=1
  GIT_CONFIG_GLOBAL="$T/gitconfig"
  XDG_DATA_HOME="$T/data"
  XDG_CONFIG_HOME="$T/config"
  XDG_CACHE_HOME="$T/cache"
  XDG_RUNTIME_DIR="$T/run"
  GIT_TERMINAL_PROMPT=0
)
# Runs a command with nothing from this machine's environment but BASE_ENV.
clean() { env -i "${BASE_ENV[@]}" "$@"; }

# The runner: times the rows interleaved, round after round (see
# bench/interleave.c). Static when the C library allows it, so its own
# start-up is not in question; it is not in the timings anyway.
cc -O2 -static -o "$T/tools/interleave" "$ROOT/bench/interleave.c" 2>/dev/null ||
  cc -O2 -o "$T/tools/interleave" "$ROOT/bench/interleave.c" ||
  die "could not compile bench/interleave.c"
RUNNER="$T/tools/interleave"
# The floor reference helper (bench/floor.c), built the same way.
FLOOR="$T/tools/git-credential-floor"
cc -O2 -static -o "$FLOOR" "$ROOT/bench/floor.c" 2>/dev/null ||
  cc -O2 -o "$FLOOR" "$ROOT/bench/floor.c" ||
  die "could not compile bench/floor.c"

# Every command below runs from the throwaway HOME, outside any git
# repository, wherever the script was started from.
cd "$T/home"

# ---------------------------------------------------------------- fixtures
SERVER=https://git.example.com
NOW=$(date +%s)
TOKEN=$("$PYTHON" -c 'import secrets; print("kgat_" + secrets.token_urlsafe(1900))')   # ~2.5 KB
REFRESH=$("$PYTHON" -c 'import secrets; print("kgrt_" + secrets.token_urlsafe(48))')
RECORD=$(printf '{"server":"%s","account":"","access_token":"%s","token_type":"bearer","expires_at":%d,"obtained_at":%d,"refresh_token":"%s","scopes":["repo"],"grant":"code"}' \
  "$SERVER" "$TOKEN" "$((NOW + 7200))" "$NOW" "$REFRESH")

# keygate's file store, written directly.
install -d -m 0700 "$T/data/keygate"
(umask 077 && printf '{"version":1,"accounts":[%s]}\n' "$RECORD" >"$T/data/keygate/tokens.json")
chmod 0600 "$T/data/keygate/tokens.json"

# Global config: keygate's provider, no credential helper (each row sets it).
clean git config --file "$T/gitconfig" "keygate.$SERVER.clientId" bench
clean git config --file "$T/gitconfig" "keygate.$SERVER.authUrl" "$SERVER/oauth/authorize"
clean git config --file "$T/gitconfig" "keygate.$SERVER.tokenUrl" "$SERVER/oauth/token"

# git-credential-store's file, with the same token.
(umask 077 && printf 'https://oauth2:%s@git.example.com\n' "$TOKEN" >"$T/creds")
# The floor helper's ready-made answer, with the same token.
(umask 077 && printf 'username=oauth2\npassword=%s\n' "$TOKEN" >"$T/floor-answer")

# Bare-name lookup: `credential.helper=keygate` runs `git credential-keygate`,
# found on PATH; keygate's front program answers as at the absolute path.
ln -s "$KEYGATE_FRONT" "$T/bin/git-credential-keygate"
ln -s "$FLOOR" "$T/bin/git-credential-floor"

printf 'url=%s/org/repo.git\n\n' "$SERVER" >"$T/req-main"
printf 'url=https://unrelated.example.org/x.git\n\n' >"$T/req-other"
printf 'protocol=https\nhost=git.example.com\n\n' >"$T/helper-req-main"
printf 'protocol=https\nhost=unrelated.example.org\n\n' >"$T/helper-req-other"

# ---------------------------------------------------------------- checks
# Runs one row's command once, untimed, and checks its answer.
expect_token() { # expect_token NAME REQUEST [NAME=VALUE...] PROGRAM [ARGS...]
  local name=$1 req=$2 out rc=0
  shift 2
  out=$(clean "$@" <"$req" 2>"$T/check.err") || rc=$?
  if [ "$rc" != 0 ] || ! grep -qxF "password=$TOKEN" <<<"$out"; then
    printf 'check failed for %s (exit %s); stdout without secrets:\n' "$name" "$rc" >&2
    # shellcheck disable=SC2001 # per line, anchored: not a ${out//...} job
    sed 's/^\(password\|credential\)=.*/\1=<redacted>/' <<<"$out" >&2
    echo "stderr:" >&2
    cat "$T/check.err" >&2
    die "$name did not return the seeded token"
  fi
  echo "   ok: $name returns the seeded token" >&2
}

GITV=$("$GIT" --version)
say "git on PATH: $GIT ($GITV); keygate: $KEYGATE_BIN ($("$KEYGATE_BIN" --version)), front: $KEYGATE_FRONT"
say "throwaway HOME: $T/home"

HELPER_STORE="credential.helper=store --file $T/creds"

# spec_row SPEC NAME STDIN [NAME=VALUE...] -- /abs/PROGRAM [ARGS...]
# Appends one row to a runner spec: a line per field and per argv element,
# so arguments keep their spaces (see bench/interleave.c).
spec_row() {
  local spec=$1 name=$2 input=$3 w
  shift 3
  for w in "$name" "$input" "$@"; do
    case $w in *$'\n'*) die "a newline in benchmark row '$name'" ;; esac
  done
  {
    printf 'row %s\nstdin %s\n' "$name" "$input"
    while [ "$1" != -- ]; do printf 'env %s\n' "$1"; shift; done
    shift
    printf 'arg %s\n' "$@"
  } >>"$spec"
}

SPEC="$T/credential.spec"
: >"$SPEC"
fill_argv=("$GIT" -c credential.helper= -c) # ... HELPER credential fill
add_row() { # add_row NAME REQUEST [NAME=VALUE...] -- HELPER
  local name=$1 req=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  spec_row "$SPEC" "$name" "$req" "${envs[@]}" -- "${fill_argv[@]}" "$2" credential fill
}
check_row() { # check_row NAME REQUEST [NAME=VALUE...] -- HELPER
  local name=$1 req=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  expect_token "$name" "$req" "${envs[@]}" timeout 20 "${fill_argv[@]}" "$2" credential fill
}

say "checking each row once before timing"
check_row "credential-store" "$T/req-main" -- "$HELPER_STORE"
add_row "credential-store" "$T/req-main" -- "$HELPER_STORE"

# What install.sh registers: the front program by absolute path.
check_row "keygate, absolute path" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_FRONT"
add_row "keygate, absolute path" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_FRONT"
# keygate itself as the helper (as registered before the front program, and
# still elsewhere than Linux): what the front saves.
check_row "keygate itself, absolute path (ref)" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_BIN"
add_row "keygate itself, absolute path (ref)" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_BIN"

check_row "keygate, bare name" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=keygate"
add_row "keygate, bare name" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=keygate"

# The floor: a helper that only copies a ready answer (bench/floor.c). What
# it costs over credential-store is what one more process costs here.
check_row "floor helper, absolute path (ref)" "$T/req-main" -- "credential.helper=$FLOOR $T/floor-answer"
add_row "floor helper, absolute path (ref)" "$T/req-main" -- "credential.helper=$FLOOR $T/floor-answer"
check_row "floor helper, bare name (ref)" "$T/req-main" -- "credential.helper=floor $T/floor-answer"
add_row "floor helper, bare name (ref)" "$T/req-main" -- "credential.helper=floor $T/floor-answer"

# Unhandled host: keygate must answer nothing (and exit 0); git then has no
# credential and, with GIT_TERMINAL_PROMPT=0, fails the fill without asking.
out=$(clean KEYGATE_STORE=file timeout 20 "$KEYGATE_FRONT" get <"$T/helper-req-other" 2>"$T/check.err") ||
  { cat "$T/check.err" >&2; die "keygate get failed for a host it does not handle"; }
[ -z "$out" ] || die "keygate answered for a host it does not handle"
rc=0
clean KEYGATE_STORE=file timeout 20 "$GIT" -c credential.helper= -c "credential.helper=$KEYGATE_FRONT" \
  credential fill <"$T/req-other" >"$T/check.out" 2>"$T/check.err" || rc=$?
if [ "$rc" = 0 ] || [ -s "$T/check.out" ] || ! grep -q 'terminal prompts disabled' "$T/check.err"; then
  cat "$T/check.err" >&2
  die "unexpected outcome for the unhandled host (exit $rc)"
fi
echo "   ok: keygate, unhandled host: keygate answers nothing; git fails the fill without prompting (exit $rc)" >&2
add_row "keygate, unhandled host" "$T/req-other" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_FRONT"
add_row "credential-store, unhandled host (ref)" "$T/req-other" -- "$HELPER_STORE"

# ---------------------------------------------------------------- keyring
KEYCHAIN_SKIP=
LIBSECRET_SKIP=
start_keyring() {
  local tool
  for tool in dbus-daemon gnome-keyring-daemon dbus-send; do
    command -v "$tool" >/dev/null || apt_install dbus dbus-daemon gnome-keyring ||
      { KEYCHAIN_SKIP="$tool is not installed (Debian: dbus-daemon / gnome-keyring) and this is not root"; return 1; }
  done
  command -v secret-tool >/dev/null || apt_install libsecret-tools ||
    { KEYCHAIN_SKIP="secret-tool is not installed (Debian: libsecret-tools) and this is not root"; return 1; }

  env -i "${BASE_ENV[@]}" dbus-daemon --session --nofork --print-address=1 >"$T/dbus.addr" 2>"$T/dbus.err" &
  DBUS_PID=$!
  for _ in $(seq 100); do
    [ -s "$T/dbus.addr" ] && break
    kill -0 "$DBUS_PID" 2>/dev/null || break
    sleep 0.05
  done
  DBUS_ADDR=$(head -n1 "$T/dbus.addr")
  [ -n "$DBUS_ADDR" ] || { KEYCHAIN_SKIP="dbus-daemon printed no address: $(head -c 300 "$T/dbus.err")"; return 1; }

  printf '%s' "bench-keyring-password" |
    env -i "${BASE_ENV[@]}" DBUS_SESSION_BUS_ADDRESS="$DBUS_ADDR" \
      gnome-keyring-daemon --foreground --unlock --components=secrets >"$T/gkr.out" 2>"$T/gkr.err" &
  GKR_PID=$!
  for _ in $(seq 200); do
    if clean DBUS_SESSION_BUS_ADDRESS="$DBUS_ADDR" dbus-send --session --print-reply \
      --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner \
      string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; then
      return 0
    fi
    kill -0 "$GKR_PID" 2>/dev/null || break
    sleep 0.05
  done
  KEYCHAIN_SKIP="gnome-keyring-daemon never owned org.freedesktop.secrets: $(head -c 300 "$T/gkr.err")"
  return 1
}

if start_keyring; then
  say "gnome-keyring is up on a private bus ($DBUS_ADDR)"
  printf '%s' "$RECORD" | clean DBUS_SESSION_BUS_ADDRESS="$DBUS_ADDR" \
    secret-tool store --label=keygate service keygate username "$SERVER" ||
    die "secret-tool could not store the keygate entry"
  # Without the kernel cache every get asks gnome-keyring; with it (the
  # default) the check below fills @u and every timed get is answered there.
  check_row "keygate, Secret Service, no kernel cache" "$T/req-main" KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_FRONT"
  add_row "keygate, Secret Service, no kernel cache" "$T/req-main" KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_FRONT"
  check_row "keygate, Secret Service + kernel cache" "$T/req-main" KEYGATE_STORE=keychain \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_FRONT"
  add_row "keygate, Secret Service + kernel cache" "$T/req-main" KEYGATE_STORE=keychain \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_FRONT"

  # git's own libsecret helper, built from Debian's git docs, as a reference.
  src=/usr/share/doc/git/contrib/credential/libsecret
  if [ ! -d "$src" ]; then
    LIBSECRET_SKIP="$src does not exist (Debian's git package is not installed)"
  elif ! command -v make >/dev/null || ! command -v pkg-config >/dev/null ||
    ! pkg-config --exists libsecret-1 glib-2.0; then
    apt_install make pkg-config libsecret-1-dev libglib2.0-dev ||
      LIBSECRET_SKIP="building git-credential-libsecret needs make, pkg-config, libsecret-1-dev and libglib2.0-dev (not root, cannot install)"
  fi
  if [ -z "$LIBSECRET_SKIP" ]; then
    mkdir -p "$T/libsecret"
    cp "$src"/* "$T/libsecret/"
    for f in "$T"/libsecret/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
    if make -s -C "$T/libsecret" >"$T/libsecret/build.log" 2>&1 && [ -x "$T/libsecret/git-credential-libsecret" ]; then
      LIBSECRET="$T/libsecret/git-credential-libsecret"
      # Seeded with secret-tool under the attributes the helper searches
      # for: this (git 2.39) helper reads input lines into a 1 KB buffer,
      # so `git credential approve` cannot hand it a 2.5 KB token. Its
      # `get` only reads the short request, so the lookup is unaffected.
      printf '%s' "$TOKEN" | clean DBUS_SESSION_BUS_ADDRESS="$DBUS_ADDR" \
        secret-tool store --label="Git: https://git.example.com/" \
        xdg:schema org.gnome.keyring.NetworkPassword user oauth2 protocol https server git.example.com ||
        die "secret-tool could not store the git-credential-libsecret entry"
      check_row "git-credential-libsecret (ref)" "$T/req-main" "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" \
        -- "credential.helper=$LIBSECRET"
      add_row "git-credential-libsecret (ref)" "$T/req-main" "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" \
        -- "credential.helper=$LIBSECRET"
    else
      LIBSECRET_SKIP="make failed: $(tail -n 3 "$T/libsecret/build.log" | tr '\n' ' ')"
    fi
  fi
else
  LIBSECRET_SKIP="no keyring (see the Secret Service row)"
fi
[ -z "$KEYCHAIN_SKIP" ] || say "SKIPPING the Secret Service row: $KEYCHAIN_SKIP"
[ -z "$LIBSECRET_SKIP" ] || say "SKIPPING the git-credential-libsecret row: $LIBSECRET_SKIP"

# ---------------------------------------------------------------- timing
mkdir -p "$RESULTS"
# run_rows SPEC OUT: times SPEC's rows with the runner, under env -i;
# samples (ROW, ROUND, ns) go to OUT, the runner's messages to OUT.log.
run_rows() {
  local rc=0 seed=()
  [ -z "${SEED:-}" ] || seed=(SEED="$SEED")
  env -i "${BASE_ENV[@]}" "${seed[@]}" "$RUNNER" "$1" "$WARMUP" "$RUNS" >"$2" 2>"$2.log" || rc=$?
  cat "$2.log" >&2
  [ "$rc" = 0 ] || die "the runner failed (exit $rc) on $1"
}

say "timing: $(grep -c '^row ' "$SPEC") rows, $WARMUP warmup + $RUNS rounds, interleaved"
run_rows "$SPEC" "$T/credential.tsv"

CSPEC="$T/components.spec"
: >"$CSPEC"
if [ "$COMPONENTS" != 0 ]; then
  # Where keygate's time goes: each process of the chain on its own.
  spec_row "$CSPEC" "exec floor: /bin/true" /dev/null -- /bin/true
  spec_row "$CSPEC" "git credential-store get (helper alone)" "$T/helper-req-main" \
    -- "$GIT" credential-store --file "$T/creds" get
  spec_row "$CSPEC" "git-credential-floor get (helper alone)" "$T/helper-req-main" \
    -- "$FLOOR" "$T/floor-answer" get
  spec_row "$CSPEC" "git-credential-keygate get, file store (helper alone)" "$T/helper-req-main" KEYGATE_STORE=file \
    -- "$KEYGATE_FRONT" get
  spec_row "$CSPEC" "keygate get, file store (helper alone)" "$T/helper-req-main" KEYGATE_STORE=file \
    -- "$KEYGATE_BIN" get
  spec_row "$CSPEC" "git-credential-keygate get, unhandled host (helper alone)" "$T/helper-req-other" KEYGATE_STORE=file \
    -- "$KEYGATE_FRONT" get
  spec_row "$CSPEC" "keygate get, unhandled host (helper alone)" "$T/helper-req-other" KEYGATE_STORE=file \
    -- "$KEYGATE_BIN" get
  spec_row "$CSPEC" "git config -z --get-regexp (keygate's config read)" /dev/null \
    -- "$GIT" config -z --get-regexp '^(keygate|credential|http)\.'
  if [ -z "$KEYCHAIN_SKIP" ]; then
    spec_row "$CSPEC" "git-credential-keygate get, Secret Service, no kernel cache (helper alone; runs keygate)" "$T/helper-req-main" \
      KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "$KEYGATE_FRONT" get
    spec_row "$CSPEC" "keygate get, Secret Service, no kernel cache (helper alone)" "$T/helper-req-main" \
      KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "$KEYGATE_BIN" get
    spec_row "$CSPEC" "git-credential-keygate get, Secret Service + kernel cache (helper alone)" "$T/helper-req-main" \
      KEYGATE_STORE=keychain "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "$KEYGATE_FRONT" get
  fi
  say "timing: per-process breakdown ($(grep -c '^row ' "$CSPEC") rows), interleaved"
  run_rows "$CSPEC" "$T/components.tsv"
fi

# ---------------------------------------------------------------- ratios
seed_of() { sed -n 's/^interleave: seed \([0-9]*\);.*/\1/p' "$1"; }
CRED_SEED=$(seed_of "$T/credential.tsv.log")
COMP_SEED=
[ "$COMPONENTS" = 0 ] || COMP_SEED=$(seed_of "$T/components.tsv.log")
export RESULTS GITV KEYCHAIN_SKIP LIBSECRET_SKIP COMPONENTS RUNS WARMUP T CRED_SEED COMP_SEED
KEYGATE_REV=$KEYGATE_REV KEYGATE_VERSION=$("$KEYGATE_BIN" --version) HOSTINFO="$(uname -srm), $(nproc) CPUs" \
  "$PYTHON" - <<'EOF'
import datetime, json, operator, os, random, statistics

env = os.environ
results, tmp = env["RESULTS"], env["T"]
RESAMPLES = 2000
BASELINE = "credential-store"
targets = {
    # issue 14: at or below git's own helper.
    "keygate, absolute path": 1.0,
    "keygate, bare name": 1.3,
    "keygate, unhandled host": 1.0,
    "keygate, Secret Service, no kernel cache": 2.0,
    "keygate, Secret Service + kernel cache": 1.1,
}


def load(name):
    """Row names (spec order) and each row's times in ns, indexed by round."""
    names = [l[4:].rstrip("\n") for l in open(os.path.join(tmp, name + ".spec")) if l.startswith("row ")]
    times = [[] for _ in names]
    for line in open(os.path.join(tmp, name + ".tsv")):
        row, rnd, ns = map(int, line.split("\t"))
        assert rnd == len(times[row]), f"{name}: row {row} round {rnd} out of order"
        times[row].append(ns)
    assert all(len(t) == int(env["RUNS"]) for t in times), f"{name}: missing samples"
    return names, times


def stats(t):
    ms = [x / 1e6 for x in t]
    return {
        "mean_ms": statistics.fmean(ms),
        "stddev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
    }


def ratio_cis(times, base, seed):
    """95% paired bootstrap CI of mean(row) / mean(base), for every row:
    rounds are resampled with replacement, each bringing both its times."""
    n = len(base)
    if n < 2:
        return [None] * len(times)
    rng = random.Random(seed)
    rounds = range(n)
    draws = [[] for _ in times]
    for _ in range(RESAMPLES):
        pick = operator.itemgetter(*rng.choices(rounds, k=n))
        b = sum(pick(base))
        for d, t in zip(draws, times):
            d.append(sum(pick(t)) / b)
    out = []
    for d in draws:
        d.sort()
        out.append([d[round(0.025 * (RESAMPLES - 1))], d[round(0.975 * (RESAMPLES - 1))]])
    return out


def method(seed):
    return (f"interleaved: {env['RUNS']} rounds (after {env['WARMUP']} warmup rounds), "
            f"each row once per round in random order; seed {seed}")


date = f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
machine = env["HOSTINFO"]
keygate = f"{env['KEYGATE_VERSION']} ({env['KEYGATE_REV']})"

names, times = load("credential")
rows = [{"name": n, **stats(t)} for n, t in zip(names, times)]
base = rows[names.index(BASELINE)]
cis = ratio_cis(times, times[names.index(BASELINE)], int(env["CRED_SEED"]))
for r, ci in zip(rows, cis):
    r["ratio_means"] = r["mean_ms"] / base["mean_ms"]
    r["ratio_means_ci95"] = ci
    r["ratio_medians"] = r["median_ms"] / base["median_ms"]
    r["target"] = targets.get(r["name"])
    r["met"] = None if r["target"] is None else r["ratio_means"] <= r["target"]
skipped = {}
for label, why in (("keygate, Secret Service, no kernel cache", env.get("KEYCHAIN_SKIP")),
                   ("keygate, Secret Service + kernel cache", env.get("KEYCHAIN_SKIP")),
                   ("git-credential-libsecret (ref)", env.get("LIBSECRET_SKIP"))):
    if why:
        skipped[label] = why

lines = [
    "# git credential fill: keygate vs git credential-store",
    "",
    f"{date}; {env['GITV']}; {keygate}; {machine}; {method(env['CRED_SEED'])}.",
    "",
    "Ratio = row mean / credential-store mean (the figure the targets apply to), with a 95% "
    f"bootstrap confidence interval ({RESAMPLES} resamples of the rounds, each round bringing the "
    "row's time and credential-store's); the median ratio is shown too, as a check against outliers.",
    "",
    "| scenario | mean ± σ (ms) | median (ms) | ratio (means) [95% CI] | ratio (medians) | target | |",
    "|---|---:|---:|---:|---:|---:|---|",
]
for r in rows:
    ci = r["ratio_means_ci95"]
    ci_text = "" if ci is None else f" [{ci[0]:.3f}–{ci[1]:.3f}]"
    target = r["target"]
    verdict = "" if target is None else ("met" if r["met"] else "**missed**")
    lines.append(
        f"| {r['name']} | {r['mean_ms']:.2f} ± {r['stddev_ms']:.2f} | {r['median_ms']:.2f} | "
        f"{r['ratio_means']:.3f}×{ci_text} | {r['ratio_medians']:.3f}× | "
        f"{'—' if target is None else f'≤ {target:.2f}×'} | {verdict} |"
    )
for label, why in skipped.items():
    lines.append(f"| {label} | skipped: {why} | | | | | |")

common = {"date": date, "git": env["GITV"], "keygate": keygate, "machine": machine,
          "method": "interleaved", "rounds": int(env["RUNS"]), "warmup_rounds": int(env["WARMUP"])}
with open(os.path.join(results, "credential.json"), "w") as f:
    json.dump({**common, "seed": int(env["CRED_SEED"]), "baseline": BASELINE,
               "bootstrap_resamples": RESAMPLES, "skipped": skipped,
               "rows": [{**r, "times_ns": t} for r, t in zip(rows, times)]}, f)

if env.get("COMPONENTS", "1") != "0":
    c_names, c_times = load("components")
    c_rows = [{"name": n, **stats(t)} for n, t in zip(c_names, c_times)]
    c_table = ["| process | mean ± σ (ms) | median (ms) |", "|---|---:|---:|"]
    c_table += [f"| {r['name']} | {r['mean_ms']:.2f} ± {r['stddev_ms']:.2f} | {r['median_ms']:.2f} |"
                for r in c_rows]
    with open(os.path.join(results, "components.md"), "w") as f:
        f.write("\n".join(["# Each process of the chain alone", "",
                           f"{date}; {env['GITV']}; {keygate}; {machine}; {method(env['COMP_SEED'])}.",
                           ""] + c_table) + "\n")
    with open(os.path.join(results, "components.json"), "w") as f:
        json.dump({**common, "seed": int(env["COMP_SEED"]),
                   "rows": [{**r, "times_ns": t} for r, t in zip(c_rows, c_times)]}, f)
    lines += ["", f"Each process alone (second interleaved run, {env['RUNS']} rounds; "
              f"seed {env['COMP_SEED']}):", ""] + c_table

text = "\n".join(lines) + "\n"
with open(os.path.join(results, "credential-ratios.md"), "w") as f:
    f.write(text)
print()
print(text)
EOF
say "results in $RESULTS (credential-ratios.md, credential.json, components.md, components.json)"
