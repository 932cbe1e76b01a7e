"""The HTTPS server under git_server.py and forge_server.py.

Threaded HTTP on an address of the caller's, with the leaf certificate
mkcerts.sh made in DIR (server.pem, server-key.pem). Each connection's TLS
handshake happens in its handler thread, so a client that connects and
says nothing holds up no one. Errors in a handler are logged through the
caller's `log`, one line each.
"""

import os
import ssl
import sys
from http.server import ThreadingHTTPServer


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, cert_dir, log, close_notify=False):
        """`close_notify`: send TLS close_notify before closing a connection."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(cert_dir, "server.pem"), os.path.join(cert_dir, "server-key.pem"))
        self.ssl_ctx = ctx
        self.log = log
        self.close_notify = close_notify
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # TLS handshake happens lazily in the handler thread
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def shutdown_request(self, request):
        # Send TLS close_notify before closing, if asked to.
        if self.close_notify:
            try:
                request.settimeout(2)
                request.unwrap()
            except Exception:
                pass
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        self.log("error handling request from %s: %r" % (client_address, sys.exc_info()[1]))
