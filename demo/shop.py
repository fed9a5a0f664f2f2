#!/usr/bin/env python3
"""Demo shop backend for `make demo`: a tiny web shop that shows what the sidecar sent it.

It prints the identity headers (X-SSO-*), the X-Forwarded-* headers and the cookies it
received, so you can see that spoofed identity headers and the sidecar's own cookies never
arrive. Standard library only.
"""
import html
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = os.environ.get("DEMO_IDENTITY_PREFIX", "X-SSO-").lower()


class Shop(BaseHTTPRequestHandler):
    server_version = "DemoShop/1.0"

    def do_GET(self):
        if self.path.startswith("/static/"):
            return self.reply(200, "text/css", b"body{font-family:sans-serif}\n")
        if self.path.startswith("/api/"):
            body = ('{"path": "%s"}\n' % self.path).encode()
            return self.reply(200, "application/json", body)
        identity = [(k, v) for k, v in self.headers.items() if k.lower().startswith(PREFIX)]
        forwarded = [(k, v) for k, v in self.headers.items() if k.lower().startswith("x-forwarded-")]
        rows = lambda pairs: "".join(
            "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(k), html.escape(v)) for k, v in pairs
        ) or "<tr><td>none</td></tr>"
        who = dict((k.lower(), v) for k, v in identity)
        greeting = "Signed in as %s" % html.escape(who.get(PREFIX + "name") or who.get(PREFIX + "subject", "")) \
            if identity else "Not signed in"
        page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Demo Shop</title>
<link rel="stylesheet" href="/static/shop.css"></head><body>
<h1>Demo Shop</h1><p id="greeting">{greeting}</p>
<p><a href="/">Home</a> · <a href="/account/">My account</a> · <a href="/oauth2/start?rd=/account/">Sign in</a></p>
<h2>Identity headers</h2><table id="identity">{rows(identity)}</table>
<h2>Forwarding headers</h2><table>{rows(forwarded)}</table>
<h2>Cookies</h2><pre>{html.escape(self.headers.get("Cookie", "none"))}</pre>
<p>Path: <code>{html.escape(self.path)}</code></p></body></html>"""
        self.reply(200, "text/html; charset=utf-8", page.encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("shop: " + (fmt % args) + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("127.0.0.1", port), Shop).serve_forever()
