import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            body, kind = b"<h1>Docker space</h1>", "text/html"
        elif url.path == "/api/square":
            n = int(parse_qs(url.query).get("n", ["0"])[0])
            answer = {"n": n, "square": n * n, "space": os.environ.get("SPACE_ID"), "uid": os.getuid()}
            body, kind = json.dumps(answer).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
