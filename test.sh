#!/usr/bin/env bash
# Runs keygate's whole test suite: unit tests, and end-to-end tests against
# the real oidc-provider OAuth server, a git smart-HTTP server, real git and
# gnome-keyring on a private D-Bus. On a fresh Debian machine, run as root,
# it first installs what those tests need.
#
#   ./test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")"

missing=()
for tool_and_package in \
  gnome-keyring-daemon:gnome-keyring dbus-daemon:dbus-daemon dbus-send:dbus \
  secret-tool:libsecret-tools xdg-mime:xdg-utils openssl:openssl curl:curl python3:python3 git:git \
  script:bsdutils setsid:util-linux php:php-cli composer:composer unzip:unzip \
  chromium:chromium certutil:libnss3-tools keyctl:keyutils su:login unshare:util-linux \
  man:man-db groff:groff-base skopeo:skopeo docker-registry:docker-registry; do
  command -v "${tool_and_package%%:*}" >/dev/null || missing+=("${tool_and_package#*:}")
done
# Composer behind a proxy needs PHP's curl and zip extensions.
if ! php -r 'exit(extension_loaded("curl") && extension_loaded("zip") ? 0 : 1);' 2>/dev/null; then
  missing+=(php-curl php-zip)
fi
# The QR decoder the device-grant test reads keygate's drawing with, a
# module of Debian's own Python.
if ! /usr/bin/python3 -c 'import zbar' 2>/dev/null; then
  missing+=(python3-zbar)
fi
# A Node.js from elsewhere ships its own npm; only a machine with neither
# takes Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "test.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

oidc=tests/support/oidc
if [ ! -f "$oidc/node_modules/.package-lock.json" ] || [ "$oidc/package-lock.json" -nt "$oidc/node_modules/.package-lock.json" ]; then
  echo "test.sh: installing the pinned oidc-provider (npm ci)"
  (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The real browser's driver: playwright-core only, against Debian's chromium.
browser=tests/support/browser
if [ ! -f "$browser/node_modules/.package-lock.json" ] || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "test.sh: installing the pinned playwright-core (npm ci)"
  (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# The machine's own settings must not leak into what the tests start.
unset RUST_BACKTRACE SSL_CERT_FILE GIT_SSL_CAINFO CURL_CA_BUNDLE CI
exec cargo test --locked "$@"
