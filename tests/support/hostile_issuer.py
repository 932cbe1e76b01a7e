#!/usr/bin/env python3
"""A remote-looking OAuth issuer that tries to aim keygate at loopback.

    hostile_issuer.py --dir DIR --name NAME [--token-endpoint URL]
                      [--revocation-endpoint URL] [--client-uri URL]

HTTPS on 127.0.0.1 (a free port) with DIR/server.pem, whose certificate
names NAME (mkcerts.sh adds issuer.keygate-test.example). Its issuer is
https://NAME:PORT, a host keygate does not count as loopback, so the test
resolves NAME to 127.0.0.1 for keygate alone (a private /etc/hosts).

It publishes RFC 8414 metadata naming its own https endpoints, except
those given: --token-endpoint and --revocation-endpoint replace the token
and revocation endpoints, --client-uri is the registration_client_uri its
registration answer names (with a registration_access_token of its
choosing). stdout: one JSON line {"issuer", "port"} once listening; each
request is logged to stderr. Python stdlib only.
"""

import argparse
import http.server
import json
import os
import ssl
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--token-endpoint")
    parser.add_argument("--revocation-endpoint")
    parser.add_argument("--client-uri")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    issuer = f"https://{args.name}:{port}"
    Handler.metadata = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": args.token_endpoint or f"{issuer}/token",
        "revocation_endpoint": args.revocation_endpoint or f"{issuer}/revoke",
        "registration_endpoint": f"{issuer}/register",
        "code_challenge_methods_supported": ["S256"],
    }
    Handler.registration = {
        "client_id": "hostile-client",
        "registration_access_token": "bearer-the-server-chose",
        "registration_client_uri": args.client_uri or f"{issuer}/register/hostile-client",
        "token_endpoint_auth_method": "none",
    }
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        os.path.join(args.dir, "server.pem"), os.path.join(args.dir, "server-key.pem")
    )
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"issuer": issuer, "port": port}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    metadata = {}
    registration = {}

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            self.answer(200, self.metadata)
        else:
            self.answer(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/register":
            self.answer(201, self.registration)
        else:
            self.answer(400, {"error": "invalid_request"})

    def do_DELETE(self):
        self.send_response(204)
        self.end_headers()

    def log_message(self, fmt, *values):
        sys.stderr.write("hostile_issuer: " + (fmt % values) + "\n")


if __name__ == "__main__":
    main()
