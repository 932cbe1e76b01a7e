#!/usr/bin/env bash
# Windows built and tested, macOS type-checked, on this Debian machine with
# nothing but Debian's archive and crates.io (docs/platforms.md).
#
# - Windows (x86_64-pc-windows-gnu): no Debian release ships a current
#   Windows std, so std is compiled from Debian's rust-src of exactly this
#   toolchain's version (-Zbuild-std on the stable compiler, unlocked with
#   RUSTC_BOOTSTRAP=1), linked by Debian's mingw-w64, and run under
#   Debian's Wine 8: the lib unit tests (named-pipe hand-off included),
#   then keygate.exe end to end against the test servers in tests/support.
# - macOS (x86_64-apple-darwin): cargo check and clippy with std from the
#   same rust-src; nothing is linked or run.
#
# Caches between runs on one machine (KG_WIN_CACHE, default
# ~/.cache/kg-win-work): Debian's rust-src, the Wine prefix, the git relay;
# the cross target dirs are ~/.cache/kg-win-target and ~/.cache/kg-win-mac.
# Ends with "windows: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
T0=$(date +%s)

CACHE=${KG_WIN_CACHE:-$HOME/.cache/kg-win-work}
WIN_TARGET_DIR=${KG_WIN_TARGET_DIR:-$HOME/.cache/kg-win-target}
MAC_TARGET_DIR=${KG_MAC_TARGET_DIR:-$HOME/.cache/kg-win-mac}
TARGET=x86_64-pc-windows-gnu
mkdir -p "$CACHE"
# Std from source on two cores: let everything else on the machine go first.
NICE=(nice -n 10)

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "windows: ok   $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "windows: FAIL $1"; }
# check NAME CMD...: one named check, its output kept.
check() {
  local name=$1 s rc=0
  shift
  s=$(date +%s)
  "$@" || rc=$?
  if [[ $rc -eq 0 ]]; then pass "$name ($(($(date +%s) - s)) s)"; else fail "$name (exit $rc)"; fi
  return 0
}

PIDS=()
finish() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ -n "${WINEPREFIX:-}" ]] && command -v wineserver >/dev/null; then
    wineserver -k 2>/dev/null || true
  fi
  rm -rf "${WORLD:-}"
  if [[ $rc -ne 0 ]]; then fail "the script stopped early (exit $rc)"; fi
  echo "windows: total $(($(date +%s) - T0)) s"
  for f in "${failures[@]}"; do echo "windows: failed: $f"; done
  echo "windows: $passed passed, $failed failed"
  if [[ $failed -gt 0 || $rc -ne 0 ]]; then exit 1; fi
}
trap finish EXIT

# --- toolchain -----------------------------------------------------------------

echo "== windows: packages"
export DEBIAN_FRONTEND=noninteractive
for tool in x86_64-w64-mingw32-gcc /usr/lib/wine/wine64 clang llvm-ar git python3 openssl; do
  if ! command -v "$tool" >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
      gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 wine wine64 clang llvm \
      git python3 openssl >/dev/null
    break
  fi
done
command -v node >/dev/null || { echo "windows: node is missing (./test.sh installs it)" >&2; exit 1; }

# Debian's rust-src for exactly this rustc, through a private apt source
# list (the machine's own sources stay as they are), kept in the cache and
# linked where rustup's rust-src component would go.
RUSTC_VERSION=$(rustc --version | awk '{print $2}')
SYSROOT=$(rustc --print sysroot)
SRC="$CACHE/rust-src-$RUSTC_VERSION"
if [[ ! -d "$SRC/usr/src/rustc-$RUSTC_VERSION/library/std" ]]; then
  echo "== windows: fetching Debian's rust-src $RUSTC_VERSION"
  A="$CACHE/apt"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/dl"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  printf 'deb [signed-by=%s] http://deb.debian.org/debian %s main\n' \
    "$keyring" trixie-backports "$keyring" trixie >"$A/sources.list"
  APT=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
  apt-get "${APT[@]}" update -qq >/dev/null
  pkg=$(apt-cache "${APT[@]}" madison rust-src | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
    grep -E "^${RUSTC_VERSION//./\\.}\+" | head -1 || true)
  if [[ -z $pkg ]]; then
    echo "windows: Debian has no rust-src for rustc $RUSTC_VERSION (trixie-backports carries 1.93.1 to 1.97.1); pin a toolchain it has" >&2
    exit 1
  fi
  (cd "$A/dl" && rm -f ./*.deb && apt-get "${APT[@]}" download -qq "rust-src=$pkg")
  rm -rf "$SRC.tmp" && dpkg-deb -x "$A"/dl/rust-src_*.deb "$SRC.tmp" && mv "$SRC.tmp" "$SRC"
  rm -rf "$A/dl"
fi
if [[ ! -d "$SYSROOT/lib/rustlib/src/rust/library/std" ]]; then
  mkdir -p "$SYSROOT/lib/rustlib/src"
  ln -sfn "$SRC/usr/src/rustc-$RUSTC_VERSION" "$SYSROOT/lib/rustlib/src/rust"
fi

export RUSTC_BOOTSTRAP=1
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
WIN=(--target "$TARGET")

# --- Wine ----------------------------------------------------------------------

unset DISPLAY
export WINEDEBUG=-all WINEPREFIX="$CACHE/wineprefix"
export XDG_RUNTIME_DIR="$CACHE/xdg-runtime"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
WINE=/usr/lib/wine/wine64
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$WINE
if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
  echo "== windows: creating the Wine prefix"
  timeout 600 "$WINE" wineboot -i >/dev/null 2>&1 || true
fi
SYS32="$WINEPREFIX/drive_c/windows/system32"
# wineboot leaves a placeholder for every DLL Wine has; Wine 8 has no
# bcryptprimitives.dll.
if [[ ! -e "$SYS32/bcryptprimitives.dll" || "$REPO/.ci/windows/bcryptprimitives.c" -nt "$SYS32/bcryptprimitives.dll" ]] &&
  ! grep -q ProcessPrng "$SYS32/bcryptprimitives.dll" 2>/dev/null; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$SYS32/bcryptprimitives.dll" \
    "$REPO/.ci/windows/bcryptprimitives.c" -ladvapi32
fi
RELAY="$CACHE/relay"
mkdir -p "$RELAY/bin" "$RELAY/run"
x86_64-w64-mingw32-gcc -O2 -municode -DRELAY_DIR="\"$RELAY\"" -o "$RELAY/bin/git.exe" \
  "$REPO/.ci/windows/git-relay.c"
# Windows programs find the relay as git.exe on their PATH.
export WINEPATH="Z:${RELAY//\//\\}\\bin"

# --- build and unit tests --------------------------------------------------------

export CARGO_TARGET_DIR=$WIN_TARGET_DIR
KEYGATE_EXE="$WIN_TARGET_DIR/$TARGET/debug/keygate.exe"
KEYGATE_RELEASE="$WIN_TARGET_DIR/$TARGET/release/keygate.exe"
FRONT_EXE="$WIN_TARGET_DIR/$TARGET/debug/git-credential-keygate.exe"

echo "== windows: cargo check --all-targets ($TARGET)"
check "cargo check --all-targets ($TARGET)" \
  "${NICE[@]}" cargo check -q -Zbuild-std "${WIN[@]}" --all-targets --locked
check "cargo clippy --all-targets ($TARGET)" \
  "${NICE[@]}" cargo clippy -q -Zbuild-std "${WIN[@]}" --all-targets --locked -- -D warnings

echo "== windows: build"
"${NICE[@]}" cargo build -q -Zbuild-std "${WIN[@]}" --bins --locked
"${NICE[@]}" cargo test -q -Zbuild-std "${WIN[@]}" --lib --locked --no-run
# Release for Credential Manager: with several entries Wine's CredEnumerateW
# returns misaligned records, which a debug build's checks abort on.
"${NICE[@]}" cargo build -q -Zbuild-std=std,panic_abort "${WIN[@]}" --release --bins --locked

echo "== windows: lib unit tests under Wine"
log="$CACHE/unit.log"
rc=0
# A hang is a failure, not a stuck CI job.
timeout 900 cargo test -Zbuild-std "${WIN[@]}" --lib --locked 2>&1 | tee "$log" || rc=$?
unit=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
  END { printf "%d %d", p, f }' "$log")
read -r unit_passed unit_failed <<<"$unit"
passed=$((passed + unit_passed))
failed=$((failed + unit_failed))
if [[ $rc -ne 0 && $unit_failed -eq 0 ]]; then fail "cargo test --lib under Wine (exit $rc)"; fi
echo "windows: lib unit tests: $unit_passed passed, $unit_failed failed"

# --- end to end -----------------------------------------------------------------

echo "== windows: end to end through keygate.exe"
WORLD=$(mktemp -d)
W=$WORLD
mkdir -p "$W/run"
cp -r "$REPO/tests/support" "$W/support"
# node_modules is cached: npm ci only when the lock file changed.
# (named node_modules, so packages inside it find each other)
OIDC_MODULES="$CACHE/oidc/node_modules"
if [[ ! -f "$OIDC_MODULES/.lock-hash" || "$(sha256sum <"$REPO/tests/support/oidc/package-lock.json")" != "$(cat "$OIDC_MODULES/.lock-hash")" ]]; then
  (cd "$W/support/oidc" && npm ci --no-audit --no-fund --silent >/dev/null)
  rm -rf "$OIDC_MODULES" && mkdir -p "${OIDC_MODULES%/*}" && mv "$W/support/oidc/node_modules" "$OIDC_MODULES"
  sha256sum <"$REPO/tests/support/oidc/package-lock.json" >"$OIDC_MODULES/.lock-hash"
fi
rm -rf "$W/support/oidc/node_modules"
ln -s "$OIDC_MODULES" "$W/support/oidc/node_modules"
"$W/support/mkcerts.sh" "$W/certs" >/dev/null 2>&1
ACCESS_TOKEN_TTL=600 node "$W/support/oidc/server.mjs" --dir "$W/certs" >"$W/oidc.out" 2>"$W/oidc.err" &
PIDS+=($!)
"$W/support/make_repo.sh" "$W/repos" demo >/dev/null 2>&1
wait_json() { for _ in $(seq 300); do grep -q '}' "$1" 2>/dev/null && return 0; sleep 0.1; done; cat "${1%.out}.err" >&2; return 1; }
json() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
wait_json "$W/oidc.out"
python3 "$W/support/git_server.py" --root "$W/repos" --dir "$W/certs" \
  --introspect "$(json "$W/oidc.out" introspection_endpoint)" >"$W/git.out" 2>"$W/git.err" &
PIDS+=($!)
wait_json "$W/git.out"
URL=$(json "$W/git.out" url)
TOKEN_URL=$(json "$W/oidc.out" token_endpoint)
HOST=${URL#https://}

# What the tests below share: the CA, a secret that must not leak, no
# prompts, no proxy.
export SSL_CERT_FILE="$W/certs/ca.pem" GIT_SSL_CAINFO="$W/certs/ca.pem" CURL_CA_BUNDLE="$W/certs/ca.pem"
export KEYGATE_CLIENT_SECRET=ci-secret-do-not-leak GIT_TERMINAL_PROMPT=0 no_proxy='*' NO_PROXY='*'
export GIT_CONFIG_NOSYSTEM=1
unset CI GIT_DIR
cd "$W/run" # a Unix directory: the current drive is Z:, so /tmp/... paths work

account() { # account FILE EXE: a git config that uses EXE for $URL
  cat >"$1" <<EOF
[user]
	name = Test
	email = test@example.com
[init]
	defaultBranch = main
[credential]
	helper = "!$WINE $2"
[keygate "$URL"]
	clientId = keygate-ci
	grant = client_credentials
	tokenUrl = $TOKEN_URL
[http]
	sslCAInfo = $W/certs/ca.pem
EOF
}
account "$W/gitconfig" "$KEYGATE_EXE"
account "$W/gitconfig-release" "$KEYGATE_RELEASE"
credential_get() { # credential_get EXE: keygate's answer to git's `get`
  printf 'protocol=https\nhost=%s\npath=demo.git\n\n' "$HOST" | "$WINE" "$1" get
}
answers_password() { [[ $(credential_get "$1") == *password=* ]]; }
clone_and_push() { # clone_and_push DIR
  git clone -q "$URL/demo.git" "$1" &&
    git -C "$1" commit -q --allow-empty -m "from keygate.exe" &&
    git -C "$1" push -q origin main
}
without_secret() { (unset KEYGATE_CLIENT_SECRET && "$@"); }
no_secret_in() { ! grep -rq ci-secret-do-not-leak "$@"; }

# File store, debug build.
e2e_file() {
  export GIT_CONFIG_GLOBAL="$W/gitconfig" KEYGATE_STORE=file XDG_DATA_HOME="$W/data-file"
  check "file store: get answers a token" answers_password "$KEYGATE_EXE"
  check "file store: git clone + push through keygate.exe" clone_and_push clone-file
  check "file store: keygate.exe status" "$WINE" "$KEYGATE_EXE" status
  # The front program: with a client secret set it hands everything to
  # keygate.exe (a child process on Windows); without one it answers the
  # token cached above itself, even with no keygate.exe beside it.
  check "front: git-credential-keygate.exe runs keygate.exe" answers_password "$FRONT_EXE"
  mkdir -p "$W/front-alone" && cp "$FRONT_EXE" "$W/front-alone/"
  check "front: git-credential-keygate.exe answers from the file store alone" \
    without_secret answers_password "$W/front-alone/git-credential-keygate.exe"
  check "file store: no client secret in the store" no_secret_in "$W/data-file"
}
e2e_file

# Credential Manager, release build, from an empty store; a 4 KB token
# needs two parts of at most 2,560 bytes each.
e2e_keychain() {
  "$WINE" reg delete 'HKCU\Software\Wine\Credential Manager' /f >/dev/null 2>&1 || true
  export GIT_CONFIG_GLOBAL="$W/gitconfig-release" KEYGATE_STORE=keychain XDG_DATA_HOME="$W/data-keychain"
  check "Credential Manager: get answers a token" answers_password "$KEYGATE_RELEASE"
  check "Credential Manager: git clone + push through keygate.exe" clone_and_push clone-keychain
  check "Credential Manager: keygate.exe status" "$WINE" "$KEYGATE_RELEASE" status
  check "Credential Manager: no token file" test ! -e "$W/data-keychain/keygate/tokens.json"
  check "Credential Manager: no client secret on disk" no_secret_in "$W/data-keychain"
}
e2e_keychain
requests=$(grep -c '"client_credentials"' "$W/certs/events.jsonl" || true)
check "one token request per store (2, saw $requests)" test "$requests" = 2

# 4 KB tokens in Credential Manager: each record goes in parts.
e2e_big_tokens() {
  "$WINE" reg delete 'HKCU\Software\Wine\Credential Manager' /f >/dev/null 2>&1 || true
  python3 "$REPO/.ci/windows/big_token_server.py" "$W/big-requests" >"$W/big.out" 2>"$W/big.err" &
  PIDS+=($!)
  wait_json "$W/big.out"
  cat >"$W/gitconfig-big" <<EOF2
[keygate "https://big.example.test"]
	clientId = big
	grant = client_credentials
	tokenUrl = $(json "$W/big.out" url)
EOF2
  export GIT_CONFIG_GLOBAL="$W/gitconfig-big" KEYGATE_STORE=keychain XDG_DATA_HOME="$W/data-big"
  local want first second
  want=$(printf 'a%.0s' $(seq 4096))
  first=$("$WINE" "$KEYGATE_RELEASE" token https://big.example.test/repo.git) || true
  second=$("$WINE" "$KEYGATE_RELEASE" token https://big.example.test/repo.git) || true
  check "Credential Manager: a 4 KB token is saved" test "${first//$'\r'/}" = "$want"
  check "Credential Manager: the 4 KB token is read back in parts" test "${second//$'\r'/}" = "$want"
  check "Credential Manager: one token request for both" test "$(wc -l <"$W/big-requests")" = 1
  local entries
  entries=$("$WINE" reg query 'HKCU\Software\Wine\Credential Manager' 2>/dev/null | grep -c '^HKEY.*Credential Manager\\' || true)
  check "Credential Manager: the record spans several entries (saw $entries)" test "$entries" -ge 3
}
e2e_big_tokens
export KEYGATE_STORE=file

# Git for Windows run from PowerShell or cmd has no HOME: the global
# config is USERPROFILE's (Wine passes no HOME to Windows programs either;
# unset here to be sure).
e2e_userprofile() {
  local profile
  profile=$("$WINE" cmd /c 'echo %USERPROFILE%' | tr -d '\r')
  profile=$("$WINE" winepath -u "$profile" | tr -d '\r')
  cp "$W/gitconfig" "$profile/.gitconfig"
  local out rc=0
  out=$(env -u HOME -u GIT_CONFIG_GLOBAL XDG_DATA_HOME="$W/data-profile" "$WINE" "$KEYGATE_EXE" token "$URL/demo.git" 2>&1) || rc=$?
  rm -f "$profile/.gitconfig"
  [[ $rc -eq 0 && -n $out ]] || { echo "$out" >&2; return 1; }
}
check "the global config is found through USERPROFILE when HOME is unset" e2e_userprofile

# Inside the user's own repository the config is read in-process: no git
# on PATH and it still works. In a repository another user owns keygate
# leaves the decision to git (safe.directory), so without git it fails.
repo_token() { # repo_token DIR
  (cd "$1" && env -u WINEPATH XDG_DATA_HOME="$W/data-owner" "$WINE" "$KEYGATE_EXE" token "$URL/demo.git" >/dev/null)
}
git init -q "$W/mine" && git init -q "$W/theirs"
export GIT_CONFIG_GLOBAL="$W/gitconfig"
check "own repository: config read in-process (no git.exe on PATH)" repo_token "$W/mine"
chown -R 65534:65534 "$W/theirs"
foreign_repo_left_to_git() {
  ! repo_token "$W/theirs" 2>"$W/theirs.err" && grep -q 'git config' "$W/theirs.err"
}
check "another user's repository: left to git (which is missing here)" foreign_repo_left_to_git

# Git for Windows' system config: etc\gitconfig of the installation whose
# git.exe is on PATH.
e2e_system_config() {
  mkdir -p "$W/Git/cmd" "$W/Git/etc"
  cp "$RELAY/bin/git.exe" "$W/Git/cmd/git.exe"
  cp "$W/gitconfig" "$W/Git/etc/gitconfig"
  : >"$W/empty-gitconfig"
  env -u GIT_CONFIG_NOSYSTEM GIT_CONFIG_GLOBAL="$W/empty-gitconfig" XDG_DATA_HOME="$W/data-system" \
    WINEPATH="Z:${W//\//\\}\\Git\\cmd" "$WINE" "$KEYGATE_EXE" token "$URL/demo.git" >/dev/null
}
check "Git for Windows' system config (etc\\gitconfig by git.exe on PATH)" e2e_system_config

# The custom-scheme redirect end to end: keygate.exe login waits on its
# named pipe; the scripted browser approves at the test server and hands
# com.example.keygate:/callback?... to keygate.exe callback.
e2e_scheme() {
  local config="$W/gitconfig-scheme" out rc=0
  cat "$W/gitconfig" >"$config"
  printf '[keygate "%s"]\n\tclientId = keygate-test\n\tauthUrl = %s\n\tscopes = git\n\tloginTimeout = 120\n\tredirect = scheme\n\tredirectUrl = com.example.keygate:/callback\n' \
    "$URL" "$(json "$W/oidc.out" authorization_endpoint)" >>"$config"
  sed -i '/grant = client_credentials/d' "$config"
  export GIT_CONFIG_GLOBAL=$config XDG_DATA_HOME="$W/data-scheme"
  out=$("$WINE" "$KEYGATE_EXE" callback 'com.example.keygate:/callback?code=x&state=nobody-waits' 2>&1) && rc=1
  [[ $out == *"no keygate login is waiting"* ]] || { echo "orphan callback: $out" >&2; return 1; }
  # Windows would open the default browser; Wine's would run xdg-open.
  "$WINE" reg add 'HKCU\Software\Wine\WineBrowser' /v Browsers /d true /f >/dev/null 2>&1
  "$WINE" "$KEYGATE_EXE" login "$URL/demo.git" 2>"$W/login.err" &
  local login=$!
  PIDS+=($login)
  local auth=
  for _ in $(seq 600); do
    auth=$(grep -o 'https://[^ ]*/auth?[^ ]*' "$W/login.err" | head -1 || true)
    [[ -n $auth ]] && break
    sleep 0.1
  done
  [[ -n $auth ]] || { cat "$W/login.err" >&2; return 1; }
  KEYGATE_TEST_CA="$W/certs/ca.pem" KEYGATE_TEST_SCHEME_HANDLER="$WINE $KEYGATE_EXE callback" \
    python3 "$W/support/browser.py" "$auth" || rc=$?
  wait "$login" || rc=$?
  [[ $rc -eq 0 ]] || { cat "$W/login.err" >&2; return 1; }
  local codes
  codes=$(grep -c '"authorization_code"' "$W/certs/events.jsonl" || true)
  [[ $codes -ge 1 ]]
}
check "scheme redirect: keygate.exe callback hands the code to a waiting keygate.exe login" e2e_scheme

# --- macOS: type-checked only --------------------------------------------------

echo "== macOS: cargo check + clippy --all-targets (x86_64-apple-darwin)"
cd "$REPO"
export CARGO_TARGET_DIR=$MAC_TARGET_DIR
export CC_x86_64_apple_darwin="$REPO/.ci/windows/darwin-cc" AR_x86_64_apple_darwin=llvm-ar
check "cargo check --all-targets (x86_64-apple-darwin)" \
  "${NICE[@]}" cargo check -q -Zbuild-std --target x86_64-apple-darwin --all-targets --locked
check "cargo clippy --all-targets (x86_64-apple-darwin)" \
  "${NICE[@]}" cargo clippy -q -Zbuild-std --target x86_64-apple-darwin --all-targets --locked -- -D warnings
