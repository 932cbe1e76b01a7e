#!/usr/bin/env python3
"""Token server for Debian's docker-registry (distribution 2.8) in token
authentication mode, guarded by OAuth token introspection.

    registry_token_server.py --dir DIR --introspect URL [--port N]

The registry sends clients here (its `auth.token.realm`); a client asks

    GET /token?service=SERVICE&scope=repository:NAME:pull,push[&scope=...]
    Authorization: Basic base64(oauth2:ACCESS_TOKEN)     (or none at all)

and gets `{"token": JWT, "access_token": JWT, "expires_in": 300}`. With
credentials, the user name must be `oauth2` and the oidc test server's
introspection endpoint (URL, client git-server/git-server-secret, trusting
DIR/ca.pem, the one git_server.py uses) must call the token active:
then every action asked for is granted. Without credentials (a client that
has none goes on anonymously) only `pull` on repositories under `public/`
is granted. Wrong credentials: 401.

The JWT follows the registry's token specification
(https://distribution.github.io/distribution/spec/auth/jwt/): ES256,
signed with a key whose self-signed certificate travels in the `x5c`
header and is the registry's `rootcertbundle`, `iss` ISSUER, `aud`
SERVICE. Key and certificate are made once in DIR/registry-token/ with
openssl, which also signs (no Python crypto package needed).

Prints one JSON line once listening:
    {"url", "port", "realm", "service", "issuer", "rootcertbundle"}
Logs go to stderr; one JSON line per token request is appended to
DIR/registry-tokens.jsonl: user, whether credentials came and were
active, the first 16 hex digits of the token's SHA-256 (to tell tokens
apart), scopes asked, access granted. Never a token. Exits 0 on SIGTERM.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import git_server
from tls_server import TLSServer

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "keygate-test-registry"
ISSUER = "keygate-test-token-server"
TOKEN_TTL = 300
LOG_LOCK = threading.Lock()


def log(msg):
    sys.stderr.write("registry_token_server: %s\n" % msg)
    sys.stderr.flush()


class Config:
    dir = None
    key = None
    cert_der = None


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_signing_key(directory):
    """EC P-256 key and a self-signed certificate for it (the registry's
    rootcertbundle), made once."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "signing-key.pem")
    cert = os.path.join(directory, "signing-cert.pem")
    if not (os.path.exists(key) and os.path.exists(cert)):
        env = dict(os.environ, OPENSSL_CONF="/dev/null")
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key + ".ec"],
                       check=True, env=env)
        subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", key + ".ec", "-out", key],
                       check=True, env=env)
        os.remove(key + ".ec")
        subprocess.run(["openssl", "req", "-new", "-x509", "-sha256", "-days", "30", "-key", key,
                        "-subj", "/CN=keygate test registry token signer", "-out", cert],
                       check=True, env=env)
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return key, cert, der


def es256(signing_input):
    """The JWS ES256 signature (r || s, 32 bytes each) of the bytes, by openssl."""
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", Config.key],
                         input=signing_input, check=True, capture_output=True).stdout
    # SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
    assert der[0] == 0x30
    pos = 2
    parts = []
    for _ in range(2):
        assert der[pos] == 0x02
        length = der[pos + 1]
        value = der[pos + 2:pos + 2 + length]
        parts.append(value.lstrip(b"\x00").rjust(32, b"\x00"))
        pos += 2 + length
    return parts[0] + parts[1]


def mint(subject, access):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(Config.cert_der).decode()]}
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + TOKEN_TTL,
        "nbf": now - 10,
        "iat": now,
        "jti": b64url(os.urandom(12)),
        "access": access,
    }
    signing_input = ("%s.%s" % (b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()))).encode()
    return signing_input.decode() + "." + b64url(es256(signing_input))


def parse_scope(scope):
    """`repository:NAME:pull,push` -> (type, name, [actions]); the name may hold ':'."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, [a for a in actions.split(",") if a]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keygate-test-registry-token/1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    def record(self, entry):
        with LOG_LOCK:
            with open(os.path.join(Config.dir, "registry-tokens.jsonl"), "a") as f:
                f.write(json.dumps(dict(entry, ts=time.time())) + "\n")

    def send_json(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/token":
            self.send_json(404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        query = urllib.parse.parse_qs(parsed.query)
        scopes = query.get("scope", [])
        entry = {"service": query.get("service", [None])[0], "scopes": scopes, "user": None,
                 "credentials": False, "active": None}
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            entry["credentials"] = True
            try:
                user, _, token = base64.b64decode(header[6:].strip()).decode().partition(":")
            except Exception:
                user, token = None, ""
            entry["user"] = user
            # Which token came, to compare requests: never the token.
            entry["token_sha256"] = hashlib.sha256(token.encode()).hexdigest()[:16] if token else None
            active = False
            if user == "oauth2" and token:
                active, _, error = git_server.introspect(token)
                if error:
                    entry["error"] = error
            entry["active"] = active
            if not active:
                self.record(dict(entry, status=401))
                self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "user oauth2 and an active OAuth access token, please"}]},
                               [("WWW-Authenticate", 'Basic realm="keygate-test-registry-token"')])
                return
        elif header:
            entry["credentials"] = True
            self.record(dict(entry, status=401))
            self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "HTTP Basic only"}]})
            return
        access = []
        for scope in scopes:
            kind, name, actions = parse_scope(scope)
            if kind != "repository":
                continue
            if not entry["credentials"]:
                actions = [a for a in actions if a == "pull" and name.startswith("public/")]
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        entry["granted"] = access
        self.record(dict(entry, status=200))
        token = mint(entry["user"] or "", access)
        self.send_json(200, {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="directory with certs; logs go here too")
    ap.add_argument("--introspect", required=True, help="token introspection endpoint URL")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()

    Config.dir = os.path.abspath(a.dir)
    git_server.Config.introspect = a.introspect
    git_server.Config.ssl_client_ctx = ssl.create_default_context(cafile=os.path.join(Config.dir, "ca.pem"))
    Config.key, cert, Config.cert_der = make_signing_key(os.path.join(Config.dir, "registry-token"))

    httpd = TLSServer(("127.0.0.1", a.port), Handler, Config.dir, log)
    port = httpd.server_address[1]

    def stop(signum, frame):
        log("signal %d, exiting" % signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    url = "https://127.0.0.1:%d" % port
    sys.stdout.write(json.dumps({"url": url, "port": port, "realm": url + "/token", "service": SERVICE,
                                 "issuer": ISSUER, "rootcertbundle": cert}) + "\n")
    sys.stdout.flush()
    log("listening on %s introspect=%s" % (url, a.introspect))
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
