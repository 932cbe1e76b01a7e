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

Prints one JSON line {"url": "https://127.0.0.1:PORT", "port": PORT} on stdout
once listening; logs go to stderr; one JSON line per request is appended to
DIR/git-requests.jsonl. Exits 0 on SIGTERM/SIGINT. Python stdlib only.
"""

import argparse
import base64
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
        self.handle_git()

    def do_POST(self):
        self.handle_git()

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
    def handle_git(self):
        # One handler instance serves all requests of a keep-alive connection.
        self._body_consumed = False
        kind, user, token = self.credentials()
        if kind in ("none", "other") or not token:
            self.deny(kind if kind != "other" else "none", "authentication required")
            return
        active, info, err = introspect(token)
        if err:
            log(err)
            self.deny(kind, err, status=503)
            return
        if not active:
            self.deny(kind, "token not active")
            return
        remote_user = user or (info or {}).get("sub") or (info or {}).get("client_id") or "token"
        self.run_backend(kind, remote_user, info or {})

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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx):
        self.ssl_ctx = ctx
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # TLS handshake happens lazily in the handler thread
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def shutdown_request(self, request):
        # Send TLS close_notify before closing.
        try:
            request.settimeout(2)
            request.unwrap()
        except Exception:
            pass
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        log("error handling request from %s: %r" % (client_address, exc))


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

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(os.path.join(Config.dir, "server.pem"), os.path.join(Config.dir, "server-key.pem"))

    httpd = Server(("127.0.0.1", a.port), Handler, sctx)
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
