#!/usr/bin/python3
# A real HTTPS endpoint for the https webhook test (python3 standard library only):
# `https_echo_server.py PORT CERT KEY`. Answers every POST with 200 {"ok":true} and prints
# "POST <path> <body>" on one line per request (stdout, flushed). Runs until killed.
import http.server
import ssl
import sys

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        print("POST", self.path, self.headers.get("Content-Type"), body.decode(), flush=True)
        out = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("listening", port, flush=True)
server.serve_forever()
