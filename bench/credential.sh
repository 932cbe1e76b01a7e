#!/usr/bin/env bash
# Benchmarks `git credential fill` answered from a cached, fresh keygate
# token against git's own `git credential-store`, on this machine, in one
# hyperfine run (so the ratios come from one run). See bench/README.md.
#
# Environment knobs:
#   KEYGATE_BIN       use this keygate binary instead of building one
#   CARGO_TARGET_DIR  where to build (default: $HOME/.cache/keygate-target)
#   RUNS, WARMUP      hyperfine runs / warmup runs per row (default 300 / 20)
#   COMPONENTS=0      skip the second hyperfine run (per-process breakdown)
#   KEEP_TMP=1        keep the throwaway HOME (daemons are stopped anyway)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-300}
WARMUP=${WARMUP:-20}
COMPONENTS=${COMPONENTS:-1}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

# ---------------------------------------------------------------- tools
if ! command -v hyperfine >/dev/null; then
  if is_root; then
    say "installing hyperfine"
    apt-get install -y hyperfine || { apt-get update -qq && apt-get install -y hyperfine; } ||
      die "could not install hyperfine with apt-get"
  else
    die "hyperfine is not installed and this is not root; install it (Debian: sudo apt-get install -y hyperfine) and rerun"
  fi
fi
HYPERFINE=$(command -v hyperfine)
command -v python3 >/dev/null || die "python3 is needed to compute the ratios"
PYTHON=$(command -v python3)
GIT=$(command -v git) || die "git is not on PATH"
if ! command -v cc >/dev/null; then
  apt_install gcc libc6-dev || die "a C compiler (cc) is needed to build the tiny stdin wrapper; install gcc"
fi

# ---------------------------------------------------------------- keygate
find_keygate

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

# hyperfine 1.15 (Debian 12) has no --input, so with -N the request reaches
# git's stdin through this wrapper: open FILE on fd 0, set NAME=VALUE pairs,
# execv PROGRAM. One static exec, the same in every row.
cat >"$T/tools/stdin-exec.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 3) {
    fputs("usage: stdin-exec FILE [NAME=VALUE...] /abs/PROGRAM [ARGS...]\n", stderr);
    return 127;
  }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0 || dup2(fd, 0) < 0) { perror(argv[1]); return 127; }
  if (fd != 0) close(fd);
  int i = 2;
  for (; i < argc && argv[i][0] != '/' && strchr(argv[i], '='); i++) putenv(argv[i]);
  if (i == argc) { fputs("stdin-exec: no program\n", stderr); return 127; }
  execv(argv[i], argv + i);
  perror(argv[i]);
  return 127;
}
EOF
cc -O2 -static -o "$T/tools/stdin-exec" "$T/tools/stdin-exec.c" 2>/dev/null ||
  cc -O2 -o "$T/tools/stdin-exec" "$T/tools/stdin-exec.c"
W="$T/tools/stdin-exec"

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

# Bare-name lookup: `credential.helper=keygate` runs `git credential-keygate`.
ln -s "$KEYGATE_BIN" "$T/bin/git-credential-keygate"

printf 'url=%s/org/repo.git\n\n' "$SERVER" >"$T/req-main"
printf 'url=https://unrelated.example.org/x.git\n\n' >"$T/req-other"
printf 'protocol=https\nhost=git.example.com\n\n' >"$T/helper-req-main"
printf 'protocol=https\nhost=unrelated.example.org\n\n' >"$T/helper-req-other"

# ---------------------------------------------------------------- checks
# Runs one row's command once, outside hyperfine, and checks its answer.
expect_token() {
  local name=$1 out rc=0
  shift
  out=$(clean timeout 20 "$@" 2>"$T/check.err") || rc=$?
  if [ "$rc" != 0 ] || ! grep -qxF "password=$TOKEN" <<<"$out"; then
    printf 'check failed for %s (exit %s); stdout without secrets:\n' "$name" "$rc" >&2
    sed 's/^\(password\|credential\)=.*/\1=<redacted>/' <<<"$out" >&2
    echo "stderr:" >&2
    cat "$T/check.err" >&2
    die "$name did not return the seeded token"
  fi
  echo "   ok: $name returns the seeded token" >&2
}

GITV=$("$GIT" --version)
say "git on PATH: $GIT ($GITV); keygate: $KEYGATE_BIN ($("$KEYGATE_BIN" --version))"
say "throwaway HOME: $T/home"

HELPER_STORE="credential.helper=store --file $T/creds"
git_fill() { # git_fill REQUEST [NAME=VALUE...] -- HELPER
  local req=$1
  shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  printf '%s\n' "$W" "$req" "${envs[@]}" "$GIT" -c credential.helper= -c "$1" credential fill
}
# hyperfine -N splits on whitespace with shell-style quoting: quote each word.
as_command() { local w s=; while IFS= read -r w; do s+="'$w' "; done; printf '%s' "${s% }"; }

declare -a NAMES=() COMMANDS=()
add_row() { # add_row NAME REQUEST [NAME=VALUE...] -- HELPER
  local name=$1
  shift
  NAMES+=("$name")
  COMMANDS+=("$(git_fill "$@" | as_command)")
}
check_row() { # check_row NAME REQUEST [NAME=VALUE...] -- HELPER
  local name=$1
  shift
  mapfile -t ARGV < <(git_fill "$@")
  expect_token "$name" "${ARGV[@]}"
}

say "checking each row once before timing"
check_row "credential-store" "$T/req-main" -- "$HELPER_STORE"
add_row "credential-store" "$T/req-main" -- "$HELPER_STORE"

check_row "keygate, absolute path" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_BIN"
add_row "keygate, absolute path" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_BIN"

check_row "keygate, bare name" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=keygate"
add_row "keygate, bare name" "$T/req-main" KEYGATE_STORE=file -- "credential.helper=keygate"

# Unhandled host: keygate must answer nothing (and exit 0); git then has no
# credential and, with GIT_TERMINAL_PROMPT=0, fails the fill without asking.
out=$(clean KEYGATE_STORE=file timeout 20 "$KEYGATE_BIN" get <"$T/helper-req-other" 2>"$T/check.err") ||
  { cat "$T/check.err" >&2; die "keygate get failed for a host it does not handle"; }
[ -z "$out" ] || die "keygate answered for a host it does not handle"
rc=0
clean KEYGATE_STORE=file timeout 20 "$GIT" -c credential.helper= -c "credential.helper=$KEYGATE_BIN" \
  credential fill <"$T/req-other" >"$T/check.out" 2>"$T/check.err" || rc=$?
if [ "$rc" = 0 ] || [ -s "$T/check.out" ] || ! grep -q 'terminal prompts disabled' "$T/check.err"; then
  cat "$T/check.err" >&2
  die "unexpected outcome for the unhandled host (exit $rc)"
fi
echo "   ok: keygate, unhandled host: keygate answers nothing; git fails the fill without prompting (exit $rc)" >&2
add_row "keygate, unhandled host" "$T/req-other" KEYGATE_STORE=file -- "credential.helper=$KEYGATE_BIN"
add_row "credential-store, unhandled host (ref)" "$T/req-other" -- "$HELPER_STORE"

# ---------------------------------------------------------------- keyring
KEYCHAIN_SKIP=
LIBSECRET_SKIP=
start_keyring() {
  local i
  for tool in dbus-daemon gnome-keyring-daemon dbus-send; do
    command -v "$tool" >/dev/null || apt_install dbus dbus-daemon gnome-keyring ||
      { KEYCHAIN_SKIP="$tool is not installed (Debian: dbus-daemon / gnome-keyring) and this is not root"; return 1; }
  done
  command -v secret-tool >/dev/null || apt_install libsecret-tools ||
    { KEYCHAIN_SKIP="secret-tool is not installed (Debian: libsecret-tools) and this is not root"; return 1; }

  env -i "${BASE_ENV[@]}" dbus-daemon --session --nofork --print-address=1 >"$T/dbus.addr" 2>"$T/dbus.err" &
  DBUS_PID=$!
  for i in $(seq 100); do
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
  for i in $(seq 200); do
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
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_BIN"
  add_row "keygate, Secret Service, no kernel cache" "$T/req-main" KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_BIN"
  check_row "keygate, Secret Service + kernel cache" "$T/req-main" KEYGATE_STORE=keychain \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_BIN"
  add_row "keygate, Secret Service + kernel cache" "$T/req-main" KEYGATE_STORE=keychain \
    "DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR" -- "credential.helper=$KEYGATE_BIN"

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
HF_ARGS=(-N -i --style basic --warmup "$WARMUP" --runs "$RUNS" --time-unit millisecond)
# Times every row of the named arrays in one hyperfine invocation and
# exports RESULTS/NAME.md and .json.
hyperfine_rows() { # hyperfine_rows NAMES_ARRAY COMMANDS_ARRAY NAME
  local -n row_names=$1 row_commands=$2
  local i rows=()
  for i in "${!row_names[@]}"; do rows+=(-n "${row_names[$i]}" "${row_commands[$i]}"); done
  env -i "${BASE_ENV[@]}" "$HYPERFINE" "${HF_ARGS[@]}" \
    --export-markdown "$RESULTS/$3.md" --export-json "$RESULTS/$3.json" \
    "${rows[@]}"
}

say "hyperfine: ${#NAMES[@]} rows x ($WARMUP warmup + $RUNS runs), one invocation"
hyperfine_rows NAMES COMMANDS credential

if [ "$COMPONENTS" != 0 ]; then
  # Where keygate's time goes: each process of the chain on its own.
  C_NAMES=(
    "exec floor: stdin-exec /bin/true"
    "git credential-store get (helper alone)"
    "keygate get, file store (helper alone)"
    "keygate get, unhandled host (helper alone)"
    "git config -z --get-regexp (keygate's config read)"
  )
  C_COMMANDS=(
    "'$W' /dev/null /bin/true"
    "'$W' '$T/helper-req-main' '$GIT' credential-store --file '$T/creds' get"
    "'$W' '$T/helper-req-main' KEYGATE_STORE=file '$KEYGATE_BIN' get"
    "'$W' '$T/helper-req-other' KEYGATE_STORE=file '$KEYGATE_BIN' get"
    "'$W' /dev/null '$GIT' config -z --get-regexp '^(keygate|credential|http)\\.'"
  )
  if [ -z "$KEYCHAIN_SKIP" ]; then
    C_NAMES+=("keygate get, Secret Service, no kernel cache (helper alone)")
    C_COMMANDS+=("'$W' '$T/helper-req-main' KEYGATE_STORE=keychain KEYGATE_KERNEL_CACHE=off 'DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR' '$KEYGATE_BIN' get")
    C_NAMES+=("keygate get, Secret Service + kernel cache (helper alone)")
    C_COMMANDS+=("'$W' '$T/helper-req-main' KEYGATE_STORE=keychain 'DBUS_SESSION_BUS_ADDRESS=$DBUS_ADDR' '$KEYGATE_BIN' get")
  fi
  say "hyperfine: per-process breakdown (${#C_NAMES[@]} rows)"
  hyperfine_rows C_NAMES C_COMMANDS components
fi

# ---------------------------------------------------------------- ratios
export RESULTS GITV KEYCHAIN_SKIP LIBSECRET_SKIP COMPONENTS RUNS WARMUP
KEYGATE_REV=$KEYGATE_REV KEYGATE_VERSION=$("$KEYGATE_BIN" --version) HOSTINFO="$(uname -srm), $(nproc) CPUs" \
  "$PYTHON" - <<'EOF'
import json, os, datetime

results = os.environ["RESULTS"]
rows = json.load(open(os.path.join(results, "credential.json")))["results"]
by_name = {r["command"]: r for r in rows}
base = by_name["credential-store"]["mean"]
base_median = by_name["credential-store"]["median"]
targets = {
    "credential-store": None,
    # issue 14: at or below git's own helper.
    "keygate, absolute path": 1.0,
    "keygate, bare name": 1.3,
    "keygate, unhandled host": 1.0,
    "keygate, Secret Service, no kernel cache": 2.0,
    "keygate, Secret Service + kernel cache": 1.1,
}

lines = [
    "# git credential fill: keygate vs git credential-store",
    "",
    f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {os.environ['GITV']}; "
    f"{os.environ['KEYGATE_VERSION']} ({os.environ['KEYGATE_REV']}); {os.environ['HOSTINFO']}; "
    f"hyperfine -N, {os.environ['WARMUP']} warmup + {os.environ['RUNS']} runs per row, one invocation.",
    "",
    "Ratio = row mean / credential-store mean (the figure the targets apply to); "
    "the median ratio is shown too, as a check against outliers from machine noise.",
    "",
    "| scenario | mean ± σ (ms) | median (ms) | ratio (means) | ratio (medians) | target | |",
    "|---|---:|---:|---:|---:|---:|---|",
]
for r in rows:
    name = r["command"]
    ratio = r["mean"] / base
    target = targets.get(name)
    verdict = "" if target is None else ("met" if ratio <= target else "**missed**")
    lines.append(
        f"| {name} | {r['mean']*1e3:.2f} ± {r['stddev']*1e3:.2f} | {r['median']*1e3:.2f} | "
        f"{ratio:.2f}× | {r['median'] / base_median:.2f}× | {'—' if target is None else f'≤ {target:.2f}×'} | {verdict} |"
    )
for label, why in (("keygate, Secret Service, no kernel cache", os.environ.get("KEYCHAIN_SKIP")),
                   ("keygate, Secret Service + kernel cache", os.environ.get("KEYCHAIN_SKIP")),
                   ("git-credential-libsecret (ref)", os.environ.get("LIBSECRET_SKIP"))):
    if why:
        lines.append(f"| {label} | skipped: {why} | | | | | |")

if os.environ.get("COMPONENTS", "1") != "0":
    path = os.path.join(results, "components.json")
    if os.path.exists(path):
        lines += ["", "Each process alone (second hyperfine run, same settings):", "",
                  "| process | mean ± σ (ms) |", "|---|---:|"]
        for r in json.load(open(path))["results"]:
            lines.append(f"| {r['command']} | {r['mean']*1e3:.2f} ± {r['stddev']*1e3:.2f} |")

text = "\n".join(lines) + "\n"
open(os.path.join(results, "credential-ratios.md"), "w").write(text)
print()
print(text)
EOF
say "results in $RESULTS (credential.md, credential.json, credential-ratios.md)"
