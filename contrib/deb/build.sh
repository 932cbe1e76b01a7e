#!/usr/bin/env bash
# Builds a Debian package of keygate from the build install.sh makes.
#
#   contrib/deb/build.sh [--from PREFIX] [--clients FILE] [--out DIR]
#
# --from PREFIX  package the keygate and git-credential-keygate that
#                install.sh put in PREFIX/bin (.ci/run passes the prefix its
#                test suite ran against); without it, install.sh builds them
#                first, into a temporary prefix
# --clients FILE passed to that build: client ids baked in (docs/packaging.md);
#                not with --from, whose binaries are already built
# --out DIR      where keygate_<version>-1_<arch>.deb goes (default: .)
#
# The files are laid out by install.sh itself (KEYGATE_BIN=..., into the
# package's /usr), so the package holds exactly what a source install
# holds: the two programs, the man pages, the completions. Added here:
# the desktop entry for the io.github.keygate: scheme handler, the systemd
# user unit of the proxy (not enabled: that is each user's choice), and
# the documentation. There are no maintainer scripts: installing the
# package registers nothing with git; each user does that (`keygate setup
# URL`, or `git config --global credential.helper
# /usr/bin/git-credential-keygate`).
#
# dpkg-deb, not cargo-deb: dpkg-deb is on every Debian machine, while
# cargo-deb would be one more tool to build from source on a 2-core CI,
# and would run a cargo build of its own instead of packaging the one
# install.sh made and the suite tested.
#
# KEYGATE_DEB_MAINTAINER sets the Maintainer field; KEYGATE_DEB_REVISION
# the Debian revision (default 1).
set -euo pipefail

from=
clients=
out=.
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    --clients) clients="${2:?--clients needs a file}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -z "$from" ] || [ -z "$clients" ] || { echo "build.sh: --clients needs a build; binaries from --from are built already" >&2; exit 2; }
command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb is needed (Debian's dpkg)" >&2; exit 1; }

source="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -z "$from" ]; then
  from="$work/build"
  "$source/install.sh" --prefix "$from" --no-register ${clients:+--clients "$clients"} >/dev/null
fi
for program in keygate git-credential-keygate; do
  [ -x "$from/bin/$program" ] || { echo "build.sh: no $from/bin/$program" >&2; exit 1; }
done

root="$work/root"
usr="$root/usr"
# install.sh lays out the programs, man pages and completions.
KEYGATE_BIN="$from/bin/keygate" "$source/install.sh" --prefix "$usr" --no-register >/dev/null
[ -f "$usr/bin/git-credential-keygate" ] && [ ! -L "$usr/bin/git-credential-keygate" ] ||
  { echo "build.sh: install.sh did not install git-credential-keygate as a program" >&2; exit 1; }
# Where Debian's zsh looks for packaged completions; PowerShell has no
# place on Debian.
mkdir -p "$usr/share/zsh/vendor-completions"
mv "$usr/share/zsh/site-functions/_keygate" "$usr/share/zsh/vendor-completions/_keygate"
rmdir "$usr/share/zsh/site-functions"
rm -r "$usr/share/powershell"

# The scheme handler for custom-scheme redirects (docs/login.md), for
# keygate's own default scheme; an app with its own scheme ships its own.
mkdir -p "$usr/share/applications"
sed -e 's|@KEYGATE@|/usr/bin/keygate|' -e 's|@SCHEME@|io.github.keygate|' \
  "$source/contrib/linux/keygate-callback.desktop" > "$usr/share/applications/keygate-callback.desktop"
mkdir -p "$usr/lib/systemd/user"
sed -e 's|^ExecStart=%h/.local/bin/keygate |ExecStart=/usr/bin/keygate |' \
  "$source/contrib/systemd/keygate-proxy.service" > "$usr/lib/systemd/user/keygate-proxy.service"
grep -q '^ExecStart=/usr/bin/keygate proxy$' "$usr/lib/systemd/user/keygate-proxy.service" ||
  { echo "build.sh: contrib/systemd/keygate-proxy.service: ExecStart not rewritten" >&2; exit 1; }

doc="$usr/share/doc/keygate"
mkdir -p "$doc/docs"
cp "$source/README.md" "$doc/"
cp "$source"/docs/*.md "$doc/docs/"
cp "$source/contrib/deb/copyright" "$doc/copyright"
# The static PIE has no program interpreter, which lintian takes for a
# shared library without its prerequisites.
mkdir -p "$usr/share/lintian/overrides"
cat > "$usr/share/lintian/overrides/keygate" <<'OVERRIDES'
# Not an upload to Debian's archive: there is no ITP bug to close.
keygate: initial-upload-closes-no-bugs [usr/share/doc/keygate/changelog.Debian.gz:1]
# Static PIEs (install.sh's build): no program interpreter by design.
keygate: shared-library-lacks-prerequisites [usr/bin/keygate]
keygate: shared-library-lacks-prerequisites [usr/bin/git-credential-keygate]
OVERRIDES

# The binary's own version, so the package can never claim another.
version="$("$usr/bin/keygate" --version | sed -n 's/^keygate //p')"
[ -n "$version" ] || { echo "build.sh: keygate --version said no version" >&2; exit 1; }
revision="${KEYGATE_DEB_REVISION:-1}"
arch="$(dpkg --print-architecture)"
# install.sh's static PIE needs no shared library; a dynamic build
# (KEYGATE_STATIC=0, other architectures) needs the C library it was built
# against, or newer.
depends="git"
if ldd "$usr/bin/keygate" 2>/dev/null | grep -q '=>'; then
  glibc="$(getconf GNU_LIBC_VERSION | sed -n 's/^glibc //p')"
  depends="libc6 (>= ${glibc}), git"
fi

maintainer="${KEYGATE_DEB_MAINTAINER:-keygate packagers <keygate-packagers@invalid>}"
# Debian wants a changelog in every binary package; this one says what
# the package is built from.
{
  echo "keygate (${version}-${revision}) unstable; urgency=medium"
  echo
  echo "  * keygate ${version}, built from source by contrib/deb/build.sh."
  echo
  echo " -- ${maintainer}  $(date -R)"
} | gzip -9n > "$doc/changelog.Debian.gz"

find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$usr/bin/keygate" "$usr/bin/git-credential-keygate"

mkdir -p "$root/DEBIAN"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
installed_size="$(du -sk --apparent-size "$usr" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: keygate
Version: ${version}-${revision}
Architecture: ${arch}
Maintainer: ${maintainer}
Installed-Size: ${installed_size}
Depends: ${depends}
Suggests: gnome-keyring
Section: vcs
Priority: optional
Description: git credential helper that keeps OAuth 2.0 tokens fresh
 keygate logs in once in the browser (or with a device code over SSH),
 keeps the tokens in the OS keychain (Secret Service) or a 0600 file,
 and hands git a fresh access token on every HTTPS operation, refreshing
 it before it expires. keygate proxy adds tokens for Composer, curl, npm
 and pip; docker-credential-keygate and cargo-credential-keygate answer
 container tools and cargo in their own protocols; in CI it trades the
 job's identity token for a git token. Each user registers it with git:
 keygate setup URL.
CONTROL
chmod 0644 "$root/DEBIAN/control"

deb="$out/keygate_${version}-${revision}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
