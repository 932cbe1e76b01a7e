#!/usr/bin/env python3
"""An OAuth server that speaks one forge's dialect, as documented, for tests.

    forge_server.py --dir DIR --dialect github|bitbucket|gitlab
                    --client-id ID [--client-secret SECRET] --callback URL
                    [--interval SECONDS] [--device-expires-in SECONDS]

keygate is proven against oidc-provider, which follows the RFCs. The forges
do not, and this server reproduces what their documentation says they do:

github (docs.github.com, "Authorizing OAuth apps", "Refreshing user access
tokens", "Troubleshooting OAuth app access token request errors"):
  * token-endpoint errors come with HTTP 200 and a JSON body
    {"error", "error_description", "error_uri"};
  * its own codes: incorrect_client_credentials, bad_verification_code,
    bad_refresh_token, redirect_uri_mismatch, unsupported_grant_type,
    incorrect_device_code, device_flow_disabled;
  * the client secret goes in the form body and is required for the code
    exchange and for refreshing browser-flow tokens, not for the device flow;
  * a poll sooner than the interval gets slow_down, which adds 5 s (or
    --slow-down-step) and carries the new "interval";
  * tokens: expires_in 28800, refresh_token_expires_in 15897600, scope
    "repo,gist" (comma-separated), the refresh token rotates;
  * a callback http://127.0.0.1/PATH accepts a redirect_uri with any port.

bitbucket (support.atlassian.com "Use OAuth on Bitbucket Cloud",
developer.atlassian.com "OAuth 2.0"):
  * consumers are confidential: key and secret by HTTP Basic;
  * redirect_uri must start with the consumer's callback URL (no port
    exception), else an error page and no redirect;
  * errors HTTP 400; tokens: expires_in 7200, granted scopes in "scopes",
    the same refresh token again on refresh.

gitlab (docs.gitlab.com "OAuth 2.0 identity provider API"):
  * non-confidential application with PKCE (S256 checked); device grant at
    /oauth/authorize_device; /oauth/revoke; errors HTTP 400 (401 for a bad
    client); the refresh token rotates; scope space-separated.

Endpoints (paths per dialect) are printed as one JSON line on stdout once
listening. A person is played by tests/support/browser.py (the authorize
page is a consent form with an abort link) or by POSTing user_code and
action=approve|deny to verification_uri. Tests steer the server with
POST /__test/set (JSON object merged into the settings below),
POST /__test/revoke-all and POST /__test/forget-device-codes. git_server.py
introspects tokens at /__introspect (Basic git-server:git-server-secret).

Settings: user_code (the next device code's user code, verbatim),
device_disabled, slow_down_first, slow_down_step, deny_description,
token_status (HTTP status forced on every token-endpoint answer, with a
temporarily_unavailable body; 0 = off), token_body (a literal body sent
with HTTP 200 instead of a token; "" = off).

One JSON line per OAuth request goes to DIR/forge-events.jsonl, never a
token, code or secret. Python stdlib only.
"""

import argparse
import base64
import hashlib
import html
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from tls_server import TLSServer

HERE = os.path.dirname(os.path.abspath(__file__))
LOCK = threading.Lock()
INTROSPECT_CLIENT = ("git-server", "git-server-secret")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

PATHS = {
    "github": {
        "authorize": "/login/oauth/authorize",
        "token": "/login/oauth/access_token",
        "device": "/login/device/code",
        "verify": "/login/device",
        "revoke": None,
    },
    "bitbucket": {
        "authorize": "/site/oauth2/authorize",
        "token": "/site/oauth2/access_token",
        "device": None,
        "verify": None,
        "revoke": None,
    },
    "gitlab": {
        "authorize": "/oauth/authorize",
        "token": "/oauth/token",
        "device": "/oauth/authorize_device",
        "verify": "/oauth/device",
        "revoke": "/oauth/revoke",
    },
}


class State:
    dialect = None
    dir = None
    base = None
    client_id = None
    client_secret = None
    callback = None
    interval = 5
    device_expires_in = 900
    settings = {
        "user_code": None,
        "device_disabled": False,
        "slow_down_first": False,
        "slow_down_step": 5,
        "deny_description": "The user has denied your application access.",
        "token_status": 0,
        "token_body": "",
    }
    transactions = {}  # consent page id -> authorize params
    codes = {}  # code -> {redirect_uri, challenge, scope, used}
    access = {}  # token -> {active, expires_at, device}
    refresh = {}  # token -> {active, device}
    devices = {}  # device_code -> {...}


def log(msg):
    sys.stderr.write("forge_server: %s\n" % msg)
    sys.stderr.flush()


def event(**fields):
    fields["ts"] = time.time()
    line = json.dumps(fields) + "\n"
    with LOCK:
        with open(os.path.join(State.dir, "forge-events.jsonl"), "a") as f:
            f.write(line)


def redirect_allowed(redirect_uri):
    """The forge's rule for a redirect_uri against the registered callback."""
    cb = urllib.parse.urlsplit(State.callback)
    try:
        ru = urllib.parse.urlsplit(redirect_uri)
        ru.port
    except ValueError:
        return False
    if State.dialect == "bitbucket":
        # "it must be appended to the same URL configured in the consumer"
        return redirect_uri.startswith(State.callback)
    if State.dialect == "github":
        loopback = cb.hostname in ("127.0.0.1", "::1", "localhost")
        if (ru.scheme, ru.hostname) != (cb.scheme, cb.hostname):
            return False
        if not loopback and ru.port != cb.port:
            return False
        base = cb.path.rstrip("/")
        return ru.path == cb.path or ru.path.startswith(base + "/")
    # gitlab: exact, but any port on a loopback callback (RFC 8252 §7.3)
    same_port = ru.port == cb.port or cb.hostname == "127.0.0.1"
    return (ru.scheme, ru.hostname, ru.path) == (cb.scheme, cb.hostname, cb.path) and same_port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forge-test/1"

    def log_message(self, fmt, *args):
        log("%s %s" % (self.command, self.path.split("?", 1)[0]))

    # -- plumbing -----------------------------------------------------------
    def send(self, status, body, content_type="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True)), raw

    def basic(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return ("", "")
        return (urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw))

    def oauth_error(self, code, description, status=400, **extra):
        """An OAuth error, with the status this dialect uses."""
        body = {"error": code, "error_description": description}
        if State.dialect == "github":
            body["error_uri"] = "https://docs.github.com/apps/oauth"
            status = 200
        body.update(extra)
        self.send(status, body)
        return code

    # -- routes -------------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        p = PATHS[State.dialect]
        if url.path == p["authorize"]:
            return self.authorize(q)
        if url.path == p["authorize"] + "/abort":
            return self.finish_authorize(q.get("tx", ""), approve=False)
        if p["verify"] and url.path == p["verify"]:
            return self.send(200, "<html><head><title>Device activation</title></head><body>"
                             "<form method=post><input name=user_code></form></body></html>", "text/html")
        self.send(404, {"error": "not_found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        p = PATHS[State.dialect]
        form, raw = self.form()
        if url.path == p["token"]:
            return self.token(form)
        if p["device"] and url.path == p["device"]:
            return self.device_code(form)
        if p["verify"] and url.path == p["verify"]:
            return self.verify(form)
        if p["revoke"] and url.path == p["revoke"]:
            with LOCK:
                for table in (State.access, State.refresh):
                    if form.get("token") in table:
                        table[form["token"]]["active"] = False
            event(endpoint="revoke")
            return self.send(200, {})
        if url.path == p["authorize"] + "/submit":
            tx = dict(urllib.parse.parse_qsl(url.query)).get("tx", "")
            return self.finish_authorize(tx, approve=True)
        if url.path == "/__introspect":
            return self.introspect(form)
        if url.path == "/__test/set":
            with LOCK:
                State.settings.update(json.loads(raw or "{}"))
            return self.send(200, State.settings)
        if url.path == "/__test/revoke-all":
            with LOCK:
                for table in (State.access, State.refresh):
                    for t in table.values():
                        t["active"] = False
            return self.send(200, {})
        if url.path == "/__test/forget-device-codes":
            with LOCK:
                State.devices.clear()
            return self.send(200, {})
        self.send(404, {"error": "not_found"})

    # -- authorization endpoint ----------------------------------------------
    def authorize(self, q):
        redirect_uri = q.get("redirect_uri") or State.callback
        ok_client = q.get("client_id") == State.client_id
        ok_redirect = redirect_allowed(redirect_uri)
        event(endpoint="authorize", redirect_uri=redirect_uri, client_ok=ok_client,
              redirect_ok=ok_redirect, pkce=q.get("code_challenge_method"))
        if not ok_client or not ok_redirect:
            # No redirect to an unregistered URI: an error page, as the forges do.
            what = "redirect_uri_mismatch" if ok_client else "invalid client_id"
            return self.send(400, "<html><body><h1>%s</h1></body></html>" % what, "text/html")
        tx = secrets.token_urlsafe(12)
        with LOCK:
            State.transactions[tx] = dict(q, redirect_uri=redirect_uri)
        page = (
            "<html><head><title>Authorize application</title></head><body>"
            "<form method=post action='%s/submit?tx=%s'><input type=hidden name=prompt value=consent>"
            "<button type=submit name=authorize value=1>Authorize</button>"
            "</form><a href='%s/abort?tx=%s'>Cancel</a></body></html>"
            % (PATHS[State.dialect]["authorize"], tx, PATHS[State.dialect]["authorize"], tx)
        )
        self.send(200, page, "text/html")

    def finish_authorize(self, tx, approve):
        with LOCK:
            q = State.transactions.pop(tx, None)
        if q is None:
            return self.send(400, "<html><body>unknown transaction</body></html>", "text/html")
        params = {}
        if approve:
            code = secrets.token_urlsafe(16)
            with LOCK:
                State.codes[code] = {
                    "redirect_uri": q["redirect_uri"],
                    "sent_redirect": "redirect_uri" in q,
                    "challenge": q.get("code_challenge"),
                    "scope": q.get("scope", ""),
                    "used": False,
                }
            params["code"] = code
        else:
            params["error"] = "access_denied"
            params["error_description"] = State.settings["deny_description"]
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in q["redirect_uri"] else "?"
        location = q["redirect_uri"] + sep + urllib.parse.urlencode(params)
        event(endpoint="authorize-finish", approved=approve)
        self.send(302, "", "text/plain", headers=[("Location", location)])

    # -- client authentication -------------------------------------------------
    def client(self, form, secret_required):
        """Returns (ok, how). How the client authenticated: basic|body|none."""
        basic = self.basic()
        if basic is not None:
            cid, secret = basic
            how = "basic"
        else:
            cid, secret = form.get("client_id"), form.get("client_secret")
            how = "body" if secret else "none"
        if cid != State.client_id:
            return False, how
        if State.dialect == "bitbucket":
            # Confidential consumers: key and secret, by HTTP Basic.
            return how == "basic" and secret == State.client_secret, how
        if secret is not None and State.client_secret is not None and secret != State.client_secret:
            return False, how
        if secret_required and secret is None:
            return False, how
        return True, how

    # -- token endpoint ---------------------------------------------------------
    def token(self, form):
        grant = form.get("grant_type", "")
        forced = State.settings["token_status"]
        if forced:
            event(endpoint="token", grant_type=grant, status=forced, error="forced")
            return self.send(forced, {"error": "temporarily_unavailable", "error_description": "try later"})
        if State.settings["token_body"]:
            event(endpoint="token", grant_type=grant, status=200, error="forced-body")
            return self.send(200, State.settings["token_body"])
        needs_secret = State.dialect == "github" and grant in ("authorization_code", "refresh_token")
        ok, how = self.client(form, needs_secret or State.dialect == "bitbucket")
        outcome = None
        if not ok:
            if State.dialect == "github":
                outcome = self.oauth_error(
                    "incorrect_client_credentials",
                    "The client_id and/or client_secret passed are incorrect.")
            else:
                outcome = self.oauth_error("invalid_client", "Client authentication failed.", 401)
        elif grant == "authorization_code":
            outcome = self.code_grant(form)
        elif grant == "refresh_token":
            outcome = self.refresh_grant(form)
        elif grant == DEVICE_GRANT and PATHS[State.dialect]["device"]:
            outcome = self.device_grant(form)
        else:
            outcome = self.oauth_error("unsupported_grant_type", "Unsupported grant type.")
        event(endpoint="token", grant_type=grant, client_auth=how, outcome=outcome or "token")

    def issue(self, scope, device=False, refresh=None):
        access = "acc_" + secrets.token_urlsafe(24)
        ttl = {"github": 28800, "bitbucket": 7200, "gitlab": 7200}[State.dialect]
        with LOCK:
            State.access[access] = {"active": True, "expires_at": time.time() + ttl, "device": device}
            if refresh is None or State.dialect != "bitbucket":
                refresh = "ref_" + secrets.token_urlsafe(24)
            State.refresh[refresh] = {"active": True, "device": device}
        body = {"access_token": access, "token_type": "bearer", "expires_in": ttl, "refresh_token": refresh}
        if State.dialect == "github":
            body["refresh_token_expires_in"] = 15897600
            body["scope"] = ",".join(scope.split())
        elif State.dialect == "bitbucket":
            body["scopes"] = scope or "repository repository:write"
            body["state"] = "authorization_code"
        else:
            body["scope"] = scope
            body["created_at"] = int(time.time())
        self.send(200, body)

    def code_grant(self, form):
        with LOCK:
            entry = State.codes.get(form.get("code", ""))
            fresh = entry is not None and not entry["used"]
            if entry is not None:
                entry["used"] = True
        bad = "bad_verification_code" if State.dialect == "github" else "invalid_grant"
        if not fresh:
            return self.oauth_error(bad, "The code passed is incorrect or expired.")
        if entry["sent_redirect"] and form.get("redirect_uri") != entry["redirect_uri"]:
            code = "redirect_uri_mismatch" if State.dialect == "github" else "invalid_grant"
            return self.oauth_error(code, "The redirect_uri does not match.")
        if State.dialect == "gitlab" and entry["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != entry["challenge"]:
                return self.oauth_error("invalid_grant", "PKCE verification failed.")
        self.issue(entry["scope"])

    def refresh_grant(self, form):
        token = form.get("refresh_token", "")
        with LOCK:
            entry = State.refresh.get(token)
            alive = entry is not None and entry["active"]
            if alive and State.dialect != "bitbucket":
                entry["active"] = False  # rotation: the old one dies now
        if not alive:
            if State.dialect == "github":
                return self.oauth_error("bad_refresh_token", "The refresh token passed is incorrect or expired.")
            return self.oauth_error("invalid_grant", "The provided authorization grant is invalid, expired or revoked.")
        self.issue("repo gist" if State.dialect == "github" else "", entry["device"],
                   refresh=token if State.dialect == "bitbucket" else None)

    # -- device flow -------------------------------------------------------------
    def device_code(self, form):
        ok, _ = self.client(form, False)
        if not ok:
            return self.oauth_error("invalid_client", "Unknown client.", 401)
        if State.settings["device_disabled"]:
            event(endpoint="device_authorization", outcome="device_flow_disabled")
            return self.oauth_error("device_flow_disabled", "Device flow must be explicitly enabled for this App")
        device = secrets.token_urlsafe(16)
        user_code = State.settings["user_code"] or "%04X-%04X" % (secrets.randbelow(65536), secrets.randbelow(65536))
        now = time.monotonic()
        with LOCK:
            State.devices[device] = {
                "user_code": user_code, "status": "pending", "expires": now + State.device_expires_in,
                "interval": State.interval, "last": now, "polls": 0, "scope": form.get("scope", ""),
            }
        verify = State.base + PATHS[State.dialect]["verify"]
        body = {"device_code": device, "user_code": user_code, "verification_uri": verify,
                "expires_in": State.device_expires_in, "interval": State.interval}
        if State.dialect == "gitlab":
            body["verification_uri_complete"] = verify + "?user_code=" + urllib.parse.quote(user_code)
        event(endpoint="device_authorization", outcome="issued")
        self.send(200, body)

    def device_grant(self, form):
        now = time.monotonic()
        with LOCK:
            d = State.devices.get(form.get("device_code", ""))
            if d is None:
                verdict = "unknown"
            else:
                d["polls"] += 1
                early = now - d["last"] < d["interval"]
                d["last"] = now
                if now >= d["expires"]:
                    verdict = "expired"
                elif early or (State.settings["slow_down_first"] and d["polls"] == 1):
                    d["interval"] += State.settings["slow_down_step"]
                    verdict = "slow_down"
                else:
                    verdict = d["status"]
                interval = d["interval"]
        if verdict != "approved":
            event(endpoint="device_poll", verdict=verdict, early=verdict == "slow_down" and d is not None and d["polls"] > 1)
        if verdict == "unknown":
            code = "incorrect_device_code" if State.dialect == "github" else "invalid_grant"
            return self.oauth_error(code, "The device_code provided is not valid.")
        if verdict == "expired":
            return self.oauth_error("expired_token", "The device_code has expired.")
        if verdict == "slow_down":
            return self.oauth_error("slow_down", "Too many requests have been made in the same timeframe.",
                                    interval=interval)
        if verdict == "pending":
            return self.oauth_error("authorization_pending", "The authorization request is still pending.")
        if verdict == "denied":
            return self.oauth_error("access_denied", State.settings["deny_description"])
        with LOCK:
            State.devices.pop(form.get("device_code", ""), None)
        event(endpoint="device_poll", verdict="approved", early=False)
        self.issue(d["scope"], device=True)

    def verify(self, form):
        """The person on another device enters the code and approves or denies."""
        with LOCK:
            match = [d for d in State.devices.values() if d["user_code"] == form.get("user_code")]
            for d in match:
                d["status"] = "denied" if form.get("action") == "deny" else "approved"
        self.send(200 if match else 404, "<html><head><title>%s</title></head></html>"
                  % ("Success" if match else html.escape("unknown code")), "text/html")

    # -- for git_server.py -------------------------------------------------------
    def introspect(self, form):
        if self.basic() != INTROSPECT_CLIENT:
            return self.send(401, {"error": "invalid_client"})
        with LOCK:
            t = State.access.get(form.get("token", ""))
            active = t is not None and t["active"] and t["expires_at"] > time.time()
        self.send(200, {"active": active, "sub": "alice" if active else None,
                        "client_id": State.client_id if active else None})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--dialect", required=True, choices=sorted(PATHS))
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret")
    ap.add_argument("--callback", required=True)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--device-expires-in", type=int, default=900)
    a = ap.parse_args()
    State.dialect = a.dialect
    State.dir = os.path.abspath(a.dir)
    State.client_id = a.client_id
    State.client_secret = a.client_secret
    State.callback = a.callback
    State.interval = a.interval
    State.device_expires_in = a.device_expires_in

    httpd = TLSServer(("127.0.0.1", 0), Handler, State.dir, log)
    port = httpd.server_address[1]
    State.base = "https://127.0.0.1:%d" % port

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    p = PATHS[State.dialect]
    info = {"url": State.base, "port": port, "introspection_endpoint": State.base + "/__introspect"}
    for key, name in (("authorize", "authorization_endpoint"), ("token", "token_endpoint"),
                      ("device", "device_authorization_endpoint"), ("verify", "verification_uri"),
                      ("revoke", "revocation_endpoint")):
        info[name] = State.base + p[key] if p[key] else None
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
