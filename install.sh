#!/usr/bin/env bash
# Builds keygate and git-credential-keygate (the small program git runs
# before every HTTPS operation: it answers a cached token itself and hands
# everything else to keygate), installs both with docker-credential-keygate
# (Docker's credential helper) beside them, and registers the helper
# with git. Safe to run again: it says what
# it changed and leaves alone what is already in place.
#
#   ./install.sh [--prefix DIR] [--no-register] [--scheme NAME] [--clients FILE]
#
# DIR defaults to ~/.local (binaries go to DIR/bin). KEYGATE_BIN=path
# installs that binary instead of building one, and the
# git-credential-keygate beside it when there is one. On x86_64 glibc Linux the
# build is a static PIE (KEYGATE_STATIC=0 builds the usual dynamic one).
# --scheme NAME registers keygate with the desktop (xdg-mime) as the
# handler of NAME: redirects, the private-use scheme your OAuth client
# uses (default io.github.keygate). --clients FILE bakes the OAuth
# clients FILE names into the build (git config syntax: a [keygate "URL"]
# section with clientId, and clientSecret where the forge wants one), so
# those servers need no keygate.<url>.clientId; git config still wins
# (docs/packaging.md). It sets KEYGATE_CLIENTS_FILE, which a plain cargo
# build reads too.
set -euo pipefail

prefix="${HOME}/.local"
register=1
scheme=io.github.keygate
clients=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --no-register) register=0; shift ;;
    --scheme) scheme="${2:?--scheme needs a name}"; shift 2 ;;
    --scheme=*) scheme="${1#--scheme=}"; shift ;;
    --clients) clients="${2:?--clients needs a file}"; shift 2 ;;
    --clients=*) clients="${1#--clients=}"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$clients" ]; then
  [ -z "${KEYGATE_BIN:-}" ] || { echo "install.sh: --clients bakes clients into a build; KEYGATE_BIN names one already made" >&2; exit 2; }
  [ -f "$clients" ] || { echo "install.sh: --clients $clients: no such file" >&2; exit 2; }
  # Absolute: cargo runs the build script elsewhere.
  KEYGATE_CLIENTS_FILE="$(cd "$(dirname "$clients")" && pwd)/$(basename "$clients")"
  export KEYGATE_CLIENTS_FILE
fi

cd "$(dirname "$0")"
[ -n "${KEYGATE_BIN:-}" ] || command -v cargo >/dev/null || { echo "install.sh: cargo is needed; install Rust from your distribution or rustup" >&2; exit 1; }
command -v git >/dev/null || { echo "install.sh: git is needed" >&2; exit 1; }

if [ -n "${KEYGATE_BIN:-}" ]; then
  # A binary built elsewhere (packaging, tests).
  built="$KEYGATE_BIN"
else
  target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  host="$(rustc -vV | sed -n 's/^host: //p')"
  if [ "$host" = x86_64-unknown-linux-gnu ] && [ "${KEYGATE_STATIC:-1}" != 0 ]; then
    # A static PIE: no dynamic loader on every git operation (half of a
    # cached `get`), address-space randomisation kept. keygate resolves
    # names itself, so glibc's NSS modules are never loaded. The explicit
    # --target keeps the static flag off build scripts and proc-macros.
    # Packed relative relocations (DT_RELR, glibc >= 2.36) shrink the
    # table it applies to itself at start from 360 KB to 4 KB.
    link=()
    glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc 2\.\([0-9]*\).*/\1/p')"
    [ "${glibc:-0}" -ge 36 ] && link=(-C link-arg=-Wl,-z,pack-relative-relocs)
    echo "building keygate (release, static PIE)..."
    for program in keygate git-credential-keygate; do
      RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo rustc --release --locked --quiet --bin "$program" --target "$host" -- "${link[@]}"
    done
    built="${target_dir}/${host}/release/keygate"
  else
    # Other platforms (macOS, Windows, musl, other architectures): the
    # usual dynamically linked build.
    echo "building keygate (release)..."
    cargo build --release --locked --quiet
    built="${target_dir}/release/keygate"
  fi
fi

bin="${prefix}/bin"
mkdir -p "$bin"
# Copies BUILT to bin/NAME unless it is already there.
install_program() { # install_program BUILT NAME
  if [ -x "$bin/$2" ] && [ ! -L "$bin/$2" ] && cmp -s "$1" "$bin/$2"; then
    echo "unchanged: $bin/$2"
  else
    install -m 0755 "$1" "$bin/$2.new"
    mv -f "$bin/$2.new" "$bin/$2"
    echo "installed: $bin/$2"
  fi
}
install_program "$built" keygate
# Links bin/NAME to TARGET (beside it) unless it already is.
link_program() { # link_program NAME TARGET
  if [ "$(readlink "$bin/$1" 2>/dev/null)" = "$2" ]; then
    echo "unchanged: $bin/$1 -> $2"
  else
    ln -sfn "$2" "$bin/$1"
    echo "linked: $bin/$1 -> $2"
  fi
}
# The quick path pays off where keygate is a static binary with a kernel
# cache in front of the keychain (Linux). Elsewhere a get from the
# keychain would start two programs instead of one: there
# git-credential-keygate is keygate under another name.
front="$(dirname "$built")/git-credential-keygate"
if [ "$(uname -s)" = Linux ] && [ -f "$front" ] && [ ! -L "$front" ]; then
  install_program "$front" git-credential-keygate
  helper="$bin/git-credential-keygate"
  quick=git-credential-keygate
else
  link_program git-credential-keygate keygate
  helper="$bin/keygate"
  quick=keygate
fi

# cargo's conventional name for a provider found on PATH, and what
# `keygate setup cargo` names: cargo runs it with --cargo-plugin for nearly
# every registry request when tokens are short-lived. Docker, podman,
# skopeo and buildah run docker-credential-keygate for the registries
# `keygate setup docker` points at keygate. Both are the quick program
# where there is one (it answers by the name it runs under, and hands
# keygate what it cannot answer).
link_program cargo-credential-keygate "$quick"
link_program docker-credential-keygate "$quick"

# Moves FILE.new over FILE unless they are the same; says which.
replace_if_changed() { # replace_if_changed FILE
  if [ -f "$1" ] && cmp -s "$1.new" "$1"; then
    rm -f "$1.new"
    echo "unchanged: $1"
  else
    mv -f "$1.new" "$1"
    echo "installed: $1"
  fi
}

# Shell completions where bash-completion, zsh (with DIR/share/zsh/site-functions
# on its fpath, as for /usr/local) and fish look. PowerShell has no such
# place: the script is left in DIR/share/powershell for a profile to
# dot-source (`. ~/.local/share/powershell/keygate.ps1`).
install_completion() { # install_completion SHELL FILE
  mkdir -p "$(dirname "$2")"
  "$bin/keygate" completions "$1" > "$2.new"
  replace_if_changed "$2"
}
install_completion bash "$prefix/share/bash-completion/completions/keygate"
install_completion zsh "$prefix/share/zsh/site-functions/_keygate"
install_completion fish "$prefix/share/fish/vendor_completions.d/keygate.fish"
install_completion powershell "$prefix/share/powershell/keygate.ps1"

# Manual pages, written by keygate from its own command definition and
# config table, gzipped as Debian ships them (man reads both). man-db
# finds DIR/share/man through DIR/bin on PATH, so `man keygate` works
# with no MANPATH. gzip -n leaves out the time, so an unchanged page
# compares equal.
pages="$(mktemp -d)"
trap 'rm -rf "$pages"' EXIT
"$bin/keygate" man "$pages" >/dev/null
for page in "$pages"/*; do
  name="$(basename "$page")"
  dir="$prefix/share/man/man${name##*.}"
  mkdir -p "$dir"
  gzip -9 -n -c "$page" > "$dir/$name.gz.new"
  replace_if_changed "$dir/$name.gz"
done

if [ "$register" = 1 ]; then
  # The absolute path saves git a PATH search and a process (`git
  # credential-keygate`) on every HTTPS operation.
  if git config --global --get-all credential.helper 2>/dev/null | grep -qxF -e "$helper" -e keygate; then
    echo "unchanged: git credential.helper already includes keygate"
  elif [ "$helper" != "$bin/keygate" ] &&
    git config --global --get-all credential.helper 2>/dev/null | grep -qxF "$bin/keygate"; then
    # Registered by an earlier install: the quick path takes its place.
    git config --global --fixed-value --replace-all credential.helper "$helper" "$bin/keygate"
    echo "registered: git config --global credential.helper $helper (instead of $bin/keygate)"
  else
    git config --global --add credential.helper "$helper"
    echo "registered: git config --global credential.helper $helper"
  fi
fi

if [ "$register" = 1 ]; then
  # Desktop hand-off of custom-scheme redirects (`keygate callback`).
  if command -v xdg-mime >/dev/null 2>&1; then
    apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
    desktop="$apps/keygate-callback.desktop"
    mkdir -p "$apps"
    sed -e "s|@KEYGATE@|$bin/keygate|" -e "s|@SCHEME@|$scheme|" \
      contrib/linux/keygate-callback.desktop > "$desktop.new"
    replace_if_changed "$desktop"
    mimeapps="${XDG_CONFIG_HOME:-$HOME/.config}/mimeapps.list"
    if grep -qs "^x-scheme-handler/$scheme=keygate-callback.desktop" "$mimeapps"; then
      echo "unchanged: $scheme: redirects go to keygate callback"
    else
      xdg-mime default keygate-callback.desktop "x-scheme-handler/$scheme"
      echo "registered: $scheme: redirects go to keygate callback (xdg-mime)"
    fi
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
  else
    echo "skipped: no xdg-mime here, so no desktop handler for $scheme: redirects (not needed for loopback or device logins)"
  fi
fi

case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "note: $bin is not on PATH; add it to use the keygate command by name" ;;
esac
"$bin/keygate" --version
