# Sourced by the bench scripts: messages, package installs, and the keygate
# binary to measure.

say() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  # Installs Debian packages when running as root; returns 1 otherwise.
  is_root || return 1
  command -v apt-get >/dev/null || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}

# Sets KEYGATE_BIN and KEYGATE_FRONT (absolute: keygate and, where
# install.sh put it, the git-credential-keygate beside it) and
# KEYGATE_REV, building both release programs unless KEYGATE_BIN names an
# installed keygate. Needs ROOT and PYTHON.
find_keygate() {
  if [ -n "${KEYGATE_BIN:-}" ]; then
    [ -x "$KEYGATE_BIN" ] || die "KEYGATE_BIN=$KEYGATE_BIN is not an executable"
    KEYGATE_REV="given as KEYGATE_BIN"
  else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keygate-target}"
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
      "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    # The binary install.sh builds: a static PIE on x86_64 glibc Linux.
    host=$(rustc -vV | sed -n 's/^host: //p')
    if [ "$host" = x86_64-unknown-linux-gnu ] && [ "${KEYGATE_STATIC:-1}" != 0 ]; then
      say "building keygate (release, static PIE) in $CARGO_TARGET_DIR"
      link=()
      glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc 2\.\([0-9]*\).*/\1/p')
      [ "${glibc:-0}" -ge 36 ] && link=(-C link-arg=-Wl,-z,pack-relative-relocs)
      for program in keygate git-credential-keygate; do
        (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
          cargo rustc --release --locked --bin "$program" --target "$host" -- "${link[@]}")
      done
      KEYGATE_BIN="$target_dir/$host/release/keygate"
    else
      say "building keygate (release) in $CARGO_TARGET_DIR"
      (cd "$ROOT" && cargo build --release --locked)
      KEYGATE_BIN="$target_dir/release/keygate"
    fi
    [ -x "$KEYGATE_BIN" ] || die "no binary at $KEYGATE_BIN after the build"
    KEYGATE_REV="built from $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'an unknown revision')"
  fi
  KEYGATE_BIN=$(realpath "$KEYGATE_BIN")
  KEYGATE_FRONT="$(dirname "$KEYGATE_BIN")/git-credential-keygate"
}

# Removes the throwaway directory $T, unless KEEP_TMP=1 asks to keep it.
remove_tmp() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "kept $T" >&2
  else
    rm -rf "$T"
  fi
}
