#!/usr/bin/env bash
# Builds keygate, installs it with its git-credential-keygate name, and
# registers it as a git credential helper. Safe to run again: it says what
# it changed and leaves alone what is already in place.
#
#   ./install.sh [--prefix DIR] [--no-register]
#
# DIR defaults to ~/.local (binaries go to DIR/bin). KEYGATE_BIN=path
# installs that binary instead of building one.
set -euo pipefail

prefix="${HOME}/.local"
register=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --no-register) register=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"
[ -n "${KEYGATE_BIN:-}" ] || command -v cargo >/dev/null || { echo "install.sh: cargo is needed; install Rust from your distribution or rustup" >&2; exit 1; }
command -v git >/dev/null || { echo "install.sh: git is needed" >&2; exit 1; }

if [ -n "${KEYGATE_BIN:-}" ]; then
  # A binary built elsewhere (packaging, tests).
  built="$KEYGATE_BIN"
else
  echo "building keygate (release)..."
  cargo build --release --locked --quiet
  target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  built="${target_dir}/release/keygate"
fi

bin="${prefix}/bin"
mkdir -p "$bin"
if [ -x "$bin/keygate" ] && cmp -s "$built" "$bin/keygate"; then
  echo "unchanged: $bin/keygate"
else
  install -m 0755 "$built" "$bin/keygate.new"
  mv -f "$bin/keygate.new" "$bin/keygate"
  echo "installed: $bin/keygate"
fi
if [ "$(readlink "$bin/git-credential-keygate" 2>/dev/null)" = "keygate" ]; then
  echo "unchanged: $bin/git-credential-keygate -> keygate"
else
  ln -sfn keygate "$bin/git-credential-keygate"
  echo "linked: $bin/git-credential-keygate -> keygate"
fi

if [ "$register" = 1 ]; then
  # The absolute path saves git a PATH search on every HTTPS operation.
  helper="$bin/keygate"
  if git config --global --get-all credential.helper 2>/dev/null | grep -qxF -e "$helper" -e keygate; then
    echo "unchanged: git credential.helper already includes keygate"
  else
    git config --global --add credential.helper "$helper"
    echo "registered: git config --global credential.helper $helper"
  fi
fi

case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on PATH; add it to use the keygate command by name" ;;
esac
"$bin/keygate" --version
