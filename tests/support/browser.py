#!/usr/bin/env python3
"""Scripted browser for keygate tests, used as $BROWSER.

    browser.py URL

URL is the OAuth authorization URL, or (as keygate passes it, to keep the
state out of argv) the file:// URL of a local page whose meta refresh leads
there. Loads the authorization URL on the test oidc-provider server, logs in
(KEYGATE_TEST_BROWSER_USER, default "alice"), grants consent and follows the
redirect chain until the redirect that leaves the authorization server, then
delivers that redirect:

  * http(s)://... (e.g. http://127.0.0.1:PORT/callback?code=..) -> GET it,
    exit 0 if it answers 2xx (else 1);
  * any other scheme (e.g. com.example.keygate:/callback?code=..) -> run
    $KEYGATE_TEST_SCHEME_HANDLER (split shell-like) with the URL appended
    as the last argument, exit with its status.

Env:
  KEYGATE_TEST_CA            CA file to trust for https (default: system)
  KEYGATE_TEST_BROWSER_LOG   append one JSON line per invocation
                             {"argv":[...],"url":..,"env":{...},"pid":..,"mode":..}
                             (url: the authorization URL, after the launch page)
  KEYGATE_TEST_BROWSER_MODE  approve (default) | deny | forge-state | hang |
                             report (a browser on another device: the
                             redirect is printed on stdout, never delivered)
  KEYGATE_TEST_SCHEME_HANDLER command for non-http redirects
  KEYGATE_TEST_BROWSER_USER  login name (default alice)
  KEYGATE_TEST_BROWSER_TRACE if set, file to which a trace of the steps is
                             appended (never contains codes or tokens)
  KEYGATE_TEST_BROWSER_VERBOSE if set, the trace also goes to stderr
                             (otherwise stderr only gets errors)

Python stdlib only.
"""

import html
import html.parser
import http.client
import http.cookiejar
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 15
MAX_STEPS = 40


def trace(msg, error=False):
    path = os.environ.get("KEYGATE_TEST_BROWSER_TRACE")
    line = "browser.py: %s" % msg
    if error or os.environ.get("KEYGATE_TEST_BROWSER_VERBOSE"):
        print(line, file=sys.stderr)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def redact(url):
    """Strip query/fragment values that may carry secrets (code, state...)."""
    try:
        p = urllib.parse.urlsplit(url)
        keys = [k for k, _ in urllib.parse.parse_qsl(p.query, keep_blank_values=True)]
        return urllib.parse.urlunsplit((p.scheme, p.netloc, p.path, "&".join(k + "=..." for k in keys), ""))
    except Exception:
        return "<unparseable url>"


def resolve(url):
    """The page keygate opens is a local file that redirects (meta refresh)
    to the authorization URL; a browser follows it, and so do we."""
    if urllib.parse.urlsplit(url).scheme != "file":
        return url
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    with open(path, encoding="utf-8") as f:
        page = f.read()
    match = re.search(r'http-equiv="refresh" content="0;url=([^"]*)"', page)
    if not match:
        raise ValueError("the launch page has no refresh")
    return html.unescape(match.group(1))


def log_invocation(mode, url):
    path = os.environ.get("KEYGATE_TEST_BROWSER_LOG")
    if not path:
        return
    rec = {
        "argv": sys.argv,
        "url": url,
        "env": dict(os.environ),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "mode": mode,
        "time": time.time(),
    }
    line = json.dumps(rec) + "\n"
    # single write in append mode: atomic enough for concurrent invocations
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class FormParser(html.parser.HTMLParser):
    """Collects <form>s with their inputs, and <a href>s."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []
        self._form = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": (a.get("method") or "get").lower(), "fields": []}
            self.forms.append(self._form)
        elif tag in ("input", "button") and self._form is not None:
            name = a.get("name")
            if name and (tag == "input" or a.get("type") == "submit"):
                self._form["fields"].append((name, a.get("value", ""), (a.get("type") or "text").lower()))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    def __init__(self):
        cafile = os.environ.get("KEYGATE_TEST_CA")
        if cafile:
            ctx = ssl.create_default_context(cafile=cafile)
        else:
            ctx = ssl.create_default_context()
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=ctx),
            urllib.request.ProxyHandler({}),
            NoRedirect,
        )

    def request(self, url, data=None):
        """Returns (status, headers, body_text) without following redirects."""
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
        req.add_header("User-Agent", "keygate-test-browser/1")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            resp = self.opener.open(req, timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            resp = e
        with resp:
            text = resp.read().decode("utf-8", "replace")
            return resp.status if hasattr(resp, "status") else resp.code, resp.headers, text


def deliver(url, mode, auth_origin):
    """Deliver the final redirect to the client."""
    if mode == "forge-state":
        p = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qsl(p.query, keep_blank_values=True)
        q = [(k, "forged-state-value" if k == "state" else v) for k, v in q]
        if not any(k == "state" for k, _ in q):
            q.append(("state", "forged-state-value"))
        url = urllib.parse.urlunsplit((p.scheme, p.netloc, p.path, urllib.parse.urlencode(q), p.fragment))
    if mode == "report":
        # What the person copies from the address bar of a browser whose
        # redirect to 127.0.0.1 loads nothing.
        print(url)
        return 0
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        trace("delivering redirect GET %s" % redact(url))
        b = Browser()
        try:
            status, _, _ = b.request(url)
        except Exception as e:  # connection refused etc.
            trace("delivery failed: %s" % e, error=True)
            return 1
        trace("redirect target answered %s" % status)
        return 0 if 200 <= status < 300 else 1
    handler = os.environ.get("KEYGATE_TEST_SCHEME_HANDLER")
    if not handler:
        trace("no KEYGATE_TEST_SCHEME_HANDLER for scheme %r" % scheme, error=True)
        return 3
    cmd = shlex.split(handler) + [url]
    trace("running scheme handler %s <url>" % shlex.split(handler))
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, timeout=120).returncode
    except subprocess.TimeoutExpired:
        trace("scheme handler timed out", error=True)
        return 124


def run(url, mode):
    user = os.environ.get("KEYGATE_TEST_BROWSER_USER", "alice")
    start = urllib.parse.urlsplit(url)
    auth_origin = (start.scheme, start.netloc)
    b = Browser()
    method_data = None
    denied = False
    for _ in range(MAX_STEPS):
        status, headers, body = b.request(url, method_data)
        method_data = None
        trace("%s -> %s" % (redact(url), status))
        if status in (301, 302, 303, 307, 308):
            loc = headers.get("Location")
            if not loc:
                trace("redirect without Location", error=True)
                return 1
            nxt = urllib.parse.urljoin(url, loc)
            p = urllib.parse.urlsplit(nxt)
            if (p.scheme, p.netloc) != auth_origin:
                return deliver(nxt, mode, auth_origin)
            url = nxt
            continue
        if status != 200:
            trace("unexpected status %s; body: %s" % (status, body[:500]), error=True)
            return 1
        parser = FormParser()
        parser.feed(body)
        if not parser.forms:
            # Device flow (verification_uri_complete given as URL): the
            # server ends on a page of its own instead of a redirect.
            title = body.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in body else ""
            if urllib.parse.urlsplit(url).path.startswith("/device"):
                trace("device flow ended on page %r" % title)
                if "Success" in title:
                    return 0
                if denied:
                    return 0
                return 1
            trace("page without a form; body: %s" % body[:500], error=True)
            return 1
        form = parser.forms[0]
        fields = {name: value for name, value, _ in form["fields"]}
        prompt = fields.get("prompt")
        action = urllib.parse.urljoin(url, form["action"])
        if prompt == "login":
            data = {"prompt": "login", "login": user, "password": "x"}
        elif prompt == "consent":
            if mode == "deny":
                abort = [l for l in parser.links if "/abort" in l]
                if abort:
                    url = urllib.parse.urljoin(url, abort[0])
                else:
                    url = action.rsplit("/submit", 1)[0] + "/abort"
                trace("denying consent via %s" % redact(url))
                denied = True
                continue
            data = {"prompt": "consent"}
        elif any(typ == "text" and not value for _, value, typ in form["fields"]):
            # A form asking for user input we don't have (device flow's
            # "enter the code" page, re-rendered after an abort or an error).
            text = body.lower()
            trace("form asks for input; ending (aborted=%s)" % ("abort" in text))
            return 0 if denied or (mode == "deny" and "abort" in text) else 1
        else:
            # e.g. an auto-submitting form_post page: submit it as is
            data = {name: value for name, value, typ in form["fields"] if typ != "submit"}
        if form["method"] == "post":
            method_data = data
            url = action
        else:
            p = urllib.parse.urlsplit(action)
            url = urllib.parse.urlunsplit((p.scheme, p.netloc, p.path, urllib.parse.urlencode(data), ""))
    trace("too many steps", error=True)
    return 1


def main():
    mode = os.environ.get("KEYGATE_TEST_BROWSER_MODE", "approve")
    if len(sys.argv) < 2:
        log_invocation(mode, None)
        print("usage: browser.py URL", file=sys.stderr)
        return 2
    try:
        url = resolve(sys.argv[1])
    except Exception as e:
        log_invocation(mode, None)
        trace("cannot read %s: %s: %s" % (sys.argv[1], type(e).__name__, e), error=True)
        return 1
    log_invocation(mode, url)
    if mode == "hang":
        return 0
    if mode not in ("approve", "deny", "forge-state", "report"):
        print("unknown KEYGATE_TEST_BROWSER_MODE %r" % mode, file=sys.stderr)
        return 2
    try:
        return run(url, mode)
    except Exception as e:
        trace("error: %s: %s" % (type(e).__name__, e), error=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
