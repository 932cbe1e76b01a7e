#!/usr/bin/env python3
"""Git smart-HTTP(S) test server guarded by OAuth token introspection.

    git_server.py --root REPOROOT --dir DIR --introspect URL [--port N]

Serves `git http-backend` (CGI) for repositories under REPOROOT over HTTPS on
127.0.0.1 (certificate DIR/server.pem + DIR/server-key.pem, made by
mkcerts.sh). Every request must carry a token that the oidc test server's
introspection endpoint (URL, client git-server/git-server-secret, trusting
DIR/ca.pem) reports as active:

    Authorization: Basic base64(ANYUSER:TOKEN)
    Authorization: Bearer TOKEN

otherwise 401 with
    WWW-Authenticate: Basic realm="keygate-test"
    WWW-Authenticate: Bearer realm="keygate-test"

Extra token-protected routes (same check; GET only but for cargo's publish):
    /cargo/..., /static/...            cargo sparse registries (cargo_registry.py)
    /uploads/...                       an index anyone may read (no token needed)
    /composer/packages.json            Composer repository (acme/private-lib)
    /composer/dist/acme-private-lib-V.zip
    /big/N[?rate=BYTES_PER_SECOND]     exactly N bytes, streamed
    /echo-auth                         JSON about the Authorization header(s)

Prints one JSON line {"url": "https://127.0.0.1:PORT", "port": PORT} on stdout
once listening; logs go to stderr; one JSON line per request is appended to
DIR/git-requests.jsonl. Exits 0 on SIGTERM/SIGINT. Python stdlib only.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler

import cargo_registry
from tls_server import TLSServer

HERE = os.path.dirname(os.path.abspath(__file__))
REALM = "keygate-test"
INTROSPECT_CLIENT = ("git-server", "git-server-secret")
LOG_LOCK = threading.Lock()


def log(msg):
    sys.stderr.write("git_server: %s\n" % msg)
    sys.stderr.flush()


class Config:
    root = None
    dir = None
    introspect = None
    ssl_client_ctx = None
    git = None


def introspect(token):
    """Returns (active: bool, info: dict|None, error: str|None)."""
    body = urllib.parse.urlencode({"token": token}).encode()
    req = urllib.request.Request(Config.introspect, data=body, method="POST")
    cred = base64.b64encode(("%s:%s" % INTROSPECT_CLIENT).encode()).decode()
    req.add_header("Authorization", "Basic " + cred)
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("Accept", "application/json")
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=Config.ssl_client_ctx),
        urllib.request.ProxyHandler({}),
    )
    try:
        with opener.open(req, timeout=10) as resp:
            info = json.loads(resp.read().decode())
    except urllib.error.HTTPError as e:
        return False, None, "introspection HTTP %s" % e.code
    except Exception as e:  # connection refused etc.
        return False, None, "introspection failed: %s" % e
    return bool(info.get("active")), info, None


# -- Composer test repository ----------------------------------------------
COMPOSER_PACKAGE = "acme/private-lib"
COMPOSER_VERSIONS = ("1.0.0", "1.1.0")
COMPOSER_AUTOLOAD = {"psr-4": {"Acme\\PrivateLib\\": "src/"}}
COMPOSER_DISTS = {}  # "acme-private-lib-V.zip" -> (version, bytes, sha1 hex)

HELLO_PHP = """<?php

declare(strict_types=1);

namespace Acme\\PrivateLib;

final class Hello
{
    public static function greet(): string
    {
        return 'hello from private-lib %s';
    }
}
"""


def build_composer_dists():
    """Builds the dist zips in memory (deterministic: fixed timestamps)."""
    for version in COMPOSER_VERSIONS:
        manifest = {
            "name": COMPOSER_PACKAGE,
            "description": "keygate test package",
            "type": "library",
            "license": "MIT",
            "autoload": COMPOSER_AUTOLOAD,
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in (
                ("composer.json", json.dumps(manifest, indent=4) + "\n"),
                ("src/Hello.php", HELLO_PHP % version),
            ):
                zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.external_attr = 0o644 << 16
                z.writestr(zi, text)
        data = buf.getvalue()
        COMPOSER_DISTS["acme-private-lib-%s.zip" % version] = (version, data, hashlib.sha1(data).hexdigest())


def composer_packages_json(base):
    versions = {}
    for fname, (version, _, sha1) in sorted(COMPOSER_DISTS.items()):
        versions[version] = {
            "name": COMPOSER_PACKAGE,
            "version": version,
            "version_normalized": version + ".0",
            "description": "keygate test package",
            "type": "library",
            "license": ["MIT"],
            "autoload": COMPOSER_AUTOLOAD,
            "dist": {
                "type": "zip",
                "url": "%s/composer/dist/%s" % (base, fname),
                "shasum": sha1,
            },
            "time": "2024-01-01T00:00:00+00:00",
        }
    return {"packages": {COMPOSER_PACKAGE: versions}}


# -- /big --------------------------------------------------------------------
BIG_CHUNK = 256 * 1024
BIG_BUF = memoryview((bytes(range(256)) * (BIG_CHUNK // 256)))
BIG_MAX = 1 << 40


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with keep-alive; CGI output without a Content-Length is
    # streamed with chunked transfer encoding (never delimited by closing
    # the TLS connection: GnuTLS-based git rejects that).
    protocol_version = "HTTP/1.1"
    server_version = "keygate-test-git/1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def record(self, status, auth, extra=None):
        parsed = urllib.parse.urlsplit(self.path)
        rec = {
            "ts": time.time(),
            "method": self.command,
            "path": parsed.path,
            "query": parsed.query,
            "auth": auth,
            "status": status,
        }
        if extra:
            rec.update(extra)
        line = json.dumps(rec) + "\n"
        with LOG_LOCK:
            with open(os.path.join(Config.dir, "git-requests.jsonl"), "a") as f:
                f.write(line)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if cargo_registry.which(path)[0]:
            self.handle_cargo(path)
        elif path.startswith("/composer/") or path == "/echo-auth" or path.startswith("/big/"):
            self.handle_extra(path)
        else:
            self.handle_git()

    def do_POST(self):
        self.handle_git()

    def do_PUT(self):
        self.handle_cargo(urllib.parse.urlsplit(self.path).path)

    # -- cargo registries (cargo_registry.py) -------------------------------
    def handle_cargo(self, path):
        registry, rest = cargo_registry.which(path)
        if registry is None:
            self._body_consumed = False
            self.deny("none", "not found", status=404)
            return
        if registry.prefix == "uploads":
            # Anyone's files: served to all, and whatever token came is noted.
            self._body_consumed = False
            kind, _, token = self.credentials()
            extra = {"token_sha256": self.token_fingerprint()} if token else {}
        elif registry.prefix == "static":
            # cargo's own token provider sends the token as the whole header.
            self._body_consumed = False
            if self.headers.get("Authorization") != cargo_registry.STATIC_TOKEN:
                self.deny("none" if not self.headers.get("Authorization") else "other", "authentication required")
                return
            kind, extra = "raw", {}
        else:
            auth = self.authenticate()
            if auth is None:
                return
            kind, remote_user, info = auth
            extra = {"user": remote_user, "token_sha256": self.token_fingerprint()}
        cargo_registry.hold_if_asked(Config.dir, rest, lambda: self.record(0, kind, {"held": rest}))
        body = b"".join(self.body_chunks())
        try:
            cargo_registry.handle(self, registry, rest, body, kind, extra)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            log("client went away: %s" % e)
            self.close_connection = True

    def token_fingerprint(self):
        """A short hash of the token: which token a request carried, never the token."""
        token = self.credentials()[2] or ""
        return hashlib.sha256(token.encode()).hexdigest()[:12]

    # -- auth -------------------------------------------------------------
    def credentials(self):
        """Returns (kind, user, token)."""
        h = self.headers.get("Authorization")
        if not h:
            return "none", None, None
        scheme, _, rest = h.strip().partition(" ")
        rest = rest.strip()
        if scheme.lower() == "basic":
            try:
                user, _, token = base64.b64decode(rest, validate=True).decode("utf-8").partition(":")
            except Exception:
                return "basic", None, None
            return "basic", user, token
        if scheme.lower() == "bearer":
            return "bearer", None, rest
        return "other", None, None

    def deny(self, auth, reason, status=401):
        self.drain_body()
        body = ("%s\n" % reason).encode()
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="%s"' % REALM)
            self.send_header("WWW-Authenticate", 'Bearer realm="%s"' % REALM)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record(status, auth, {"reason": reason})

    def drain_body(self):
        try:
            for _ in self.body_chunks():
                pass
        except Exception:
            pass

    # -- request body -----------------------------------------------------
    def body_chunks(self):
        if getattr(self, "_body_consumed", False):
            return
        self._body_consumed = True
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise IOError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, 65536))
                    if not data:
                        raise IOError("eof in chunk")
                    remaining -= len(data)
                    yield data
                self.rfile.readline(3)  # CRLF after chunk
            return
        length = self.headers.get("Content-Length")
        if length is None:
            return
        remaining = int(length)
        while remaining > 0:
            data = self.rfile.read(min(remaining, 65536))
            if not data:
                raise IOError("eof in body")
            remaining -= len(data)
            yield data

    # -- git ----------------------------------------------------------------
    def authenticate(self):
        """Checks the token. Returns (kind, remote_user, info), or None after
        answering 401/503 itself."""
        # One handler instance serves all requests of a keep-alive connection.
        self._body_consumed = False
        kind, user, token = self.credentials()
        if kind in ("none", "other") or not token:
            self.deny(kind if kind != "other" else "none", "authentication required")
            return None
        active, info, err = introspect(token)
        if err:
            log(err)
            self.deny(kind, err, status=503)
            return None
        if not active:
            self.deny(kind, "token not active")
            return None
        remote_user = user or (info or {}).get("sub") or (info or {}).get("client_id") or "token"
        return kind, remote_user, info or {}

    def handle_git(self):
        auth = self.authenticate()
        if auth is None:
            return
        kind, remote_user, info = auth
        self.run_backend(kind, remote_user, info)

    # -- extra routes: /composer/, /big/N, /echo-auth -------------------------
    def handle_extra(self, path):
        auth = self.authenticate()
        if auth is None:
            return
        kind, remote_user, info = auth
        extra = {"user": remote_user}
        if info.get("client_id"):
            extra["client_id"] = info["client_id"]
        self.drain_body()
        try:
            if path == "/echo-auth":
                self.send_json(200, self.describe_auth(info), kind, extra)
            elif path == "/composer/packages.json":
                host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]
                self.send_json(200, composer_packages_json("https://" + host), kind, extra)
            elif path.startswith("/composer/dist/") and path[len("/composer/dist/"):] in COMPOSER_DISTS:
                _, data, _ = COMPOSER_DISTS[path[len("/composer/dist/"):]]
                self.send_bytes(200, data, "application/zip", kind, extra)
            elif path.startswith("/big/"):
                self.send_big(path, kind, extra)
            else:
                extra["reason"] = "not found"
                self.send_bytes(404, b"not found\n", "text/plain", kind, extra)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            log("client went away: %s" % e)
            self.close_connection = True

    def describe_auth(self, info):
        values = self.headers.get_all("Authorization") or []
        kinds, users = [], []
        for v in values:
            scheme, _, rest = v.strip().partition(" ")
            k = scheme.lower() if scheme.lower() in ("basic", "bearer") else "other"
            kinds.append(k)
            if k == "basic":
                try:
                    users.append(base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")[0])
                except Exception:
                    users.append(None)
        return {
            "auth": kinds[0] if kinds else "none",
            "basic_user": users[0] if users else None,
            "authorization_count": len(values),
            "duplicated": len(values) > 1,
            "kinds": kinds,
            "basic_users": users,
            "proxy_authorization": self.headers.get("Proxy-Authorization") is not None,
            "host": self.headers.get("Host"),
            "host_count": len(self.headers.get_all("Host") or []),
            "client_id": info.get("client_id"),
            "sub": info.get("sub"),
            "user_agent": self.headers.get("User-Agent"),
        }

    def send_json(self, status, obj, kind, extra):
        body = (json.dumps(obj, indent=2) + "\n").encode()
        self.send_bytes(status, body, "application/json", kind, extra)

    def send_bytes(self, status, body, ctype, kind, extra):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record(status, kind, extra)

    def send_big(self, path, kind, extra):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            n = int(path[len("/big/"):])
            rate = int(q["rate"][0]) if "rate" in q else 0
            if not 0 <= n <= BIG_MAX or rate < 0:
                raise ValueError
        except ValueError:
            extra["reason"] = "bad size or rate"
            self.send_bytes(400, b"usage: /big/N[?rate=BYTES_PER_SECOND]\n", "text/plain", kind, extra)
            return
        # throttled: about 20 writes per second
        chunk = min(BIG_CHUNK, max(1, rate // 20)) if rate else BIG_CHUNK
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        sent, start, err = 0, time.monotonic(), None
        write = self.wfile.write
        try:
            while sent < n:
                m = min(chunk, n - sent)
                write(BIG_BUF[:m])
                sent += m
                if rate:
                    delay = start + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            err = str(e) or type(e).__name__
            log("client went away after %d of %d bytes: %s" % (sent, n, err))
            self.close_connection = True
        extra.update({"bytes": sent, "complete": sent == n, "seconds": round(time.monotonic() - start, 3)})
        if err:
            extra["error"] = err
        self.record(200, kind, extra)

    def run_backend(self, kind, remote_user, info):
        parsed = urllib.parse.urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "GIT_PROJECT_ROOT": Config.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory",
            "GIT_CONFIG_VALUE_1": "*",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(parsed.path),
            "QUERY_STRING": parsed.query,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": remote_user,
            "AUTH_TYPE": "Basic" if kind == "basic" else "Bearer",
            "HTTPS": "on",
        }
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if self.headers.get("Content-Length") and not chunked:
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        for k, v in self.headers.items():
            key = "HTTP_" + k.upper().replace("-", "_")
            if key in ("HTTP_AUTHORIZATION", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_PROXY"):
                continue
            env[key] = v

        proc = subprocess.Popen(
            [Config.git, "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            env=env,
            cwd=Config.root,
        )

        body_error = []

        def feed():
            try:
                for chunk in self.body_chunks():
                    proc.stdin.write(chunk)
            except Exception as e:  # client went away or backend closed stdin
                body_error.append(str(e))
            finally:
                try:
                    proc.stdin.close()
                except Exception:
                    pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        # CGI response headers
        status = 200
        headers = []
        while True:
            line = proc.stdout.readline()
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            value = value.strip()
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value))
        has_length = any(n.lower() == "content-length" for n, _ in headers)
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if not has_length:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                data = proc.stdout.read1(65536)
                if not data:
                    break
                if has_length:
                    self.wfile.write(data)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if not has_length:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            log("client went away: %s" % e)
            self.close_connection = True
        finally:
            feeder.join(timeout=30)
            rc = proc.wait()
        extra = {"user": remote_user}
        if info.get("client_id"):
            extra["client_id"] = info["client_id"]
        if rc != 0:
            extra["backend_rc"] = rc
        if body_error:
            extra["body_error"] = body_error[0]
        self.record(status, kind, extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="GIT_PROJECT_ROOT (holds NAME.git repos)")
    ap.add_argument("--dir", required=True, help="directory with certs; logs go here too")
    ap.add_argument("--introspect", required=True, help="token introspection endpoint URL")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()

    Config.root = os.path.abspath(a.root)
    Config.dir = os.path.abspath(a.dir)
    Config.introspect = a.introspect
    Config.git = shutil.which("git") or "git"
    os.makedirs(Config.dir, exist_ok=True)
    if not all(os.path.exists(os.path.join(Config.dir, f)) for f in ("ca.pem", "server.pem", "server-key.pem")):
        subprocess.run([os.path.join(HERE, "mkcerts.sh"), Config.dir], check=True, stdout=sys.stderr)
    Config.ssl_client_ctx = ssl.create_default_context(cafile=os.path.join(Config.dir, "ca.pem"))
    build_composer_dists()

    httpd = TLSServer(("127.0.0.1", a.port), Handler, Config.dir, log, close_notify=True)
    port = httpd.server_address[1]

    def stop(signum, frame):
        log("signal %d, exiting" % signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sys.stdout.write(json.dumps({"url": "https://127.0.0.1:%d" % port, "port": port}) + "\n")
    sys.stdout.flush()
    log("listening on https://127.0.0.1:%d root=%s introspect=%s" % (port, Config.root, Config.introspect))
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
