#!/bin/sh
# Runs a real `composer install` of acme/private-lib (^1.0) from git_server.py's
# /composer/ repository and prints Acme\PrivateLib\Hello::greet().
#
#   tests/support/composer/install.sh WORKDIR REPO_URL CAFILE
#
# WORKDIR   empty/new directory; gets project/, home/ and cache/ (fresh cache,
#           so every run really downloads packages.json and the zip)
# REPO_URL  e.g. https://127.0.0.1:PORT/composer
# CAFILE    CA bundle Composer trusts for REPO_URL (DIR/ca.pem directly, or the
#           proxy's CA when a TLS-intercepting proxy sits in between)
#
# Env: TOKEN (optional) is given to Composer as http-basic x:TOKEN for
# REPO_URL's host:port through COMPOSER_AUTH; without it Composer sends no
# Authorization (a proxy must inject it). HTTPS_PROXY/https_proxy, if set, are
# used by Composer as usual (credentials in the URL become
# Proxy-Authorization: Basic on CONNECT). COMPOSER_ARGS adds arguments.
# Exit status is composer's (or php's); stdout ends with the greeting.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 WORKDIR REPO_URL CAFILE" >&2; exit 2; }
W=$1 URL=$2 CA=$3
mkdir -p "$W/project" "$W/home" "$W/cache"
cat > "$W/project/composer.json" <<JSON
{
    "name": "keygate/composer-test",
    "require": {"acme/private-lib": "^1.0"},
    "repositories": [
        {"packagist.org": false},
        {"type": "composer", "url": "$URL"}
    ],
    "config": {"cafile": "$CA"}
}
JSON
hostport=$(printf '%s' "$URL" | sed -E 's#^[a-z]+://([^/]+).*#\1#')
if [ -n "${TOKEN:-}" ]; then
    COMPOSER_AUTH=$(printf '{"http-basic":{"%s":{"username":"x","password":"%s"}}}' "$hostport" "$TOKEN")
    export COMPOSER_AUTH
else
    unset COMPOSER_AUTH || true
fi
cd "$W/project"
COMPOSER_HOME="$W/home" COMPOSER_CACHE_DIR="$W/cache" COMPOSER_NO_INTERACTION=1 \
COMPOSER_ALLOW_SUPERUSER=1 COMPOSER_CAFILE="$CA" \
    composer install --no-interaction --no-progress ${COMPOSER_ARGS:-} >&2
php -r 'require "vendor/autoload.php"; echo Acme\PrivateLib\Hello::greet(), "\n";'
