#!/usr/bin/env python3
"""A token endpoint on 127.0.0.1 that grants 4 KB access and refresh tokens
(bigger than one Credential Manager entry holds), for .ci/windows.sh.
Prints {"url": ...} once listening; appends one line per request to
REQUESTS_FILE (argv[1])."""
import http.server
import json
import sys

ACCESS = "a" * 4096
BODY = json.dumps({"access_token": ACCESS, "token_type": "Bearer",
                   "expires_in": 7200, "refresh_token": "r" * 4096}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[1], "a") as log:
            log.write("token\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"url": "http://127.0.0.1:%d/token" % server.server_port}), flush=True)
server.serve_forever()
