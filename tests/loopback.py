"""A loopback HTTP server (127.0.0.1 only) for one file, and in-memory zips: the download tests."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed zip archive holding ``members`` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class LoopbackServer:
    """A loopback HTTP server for one file with optional Range support; logs Range headers."""

    def __init__(self, body: bytes, honour_range: bool = True, status: int = 200, cut_at: int | None = None):
        self.body, self.honour_range, self.status, self.ranges = body, honour_range, status, []
        self.cut_at = cut_at  # send only this many bytes, then drop the connection
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if outer.status != 200:
                    self.send_error(outer.status)
                    return
                start = int(rng.split("=")[1].rstrip("-")) if rng and outer.honour_range else 0
                if start >= len(outer.body) and rng:
                    self.send_response(416)
                    self.end_headers()
                    return
                chunk = outer.body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                self.wfile.write(chunk if outer.cut_at is None else chunk[: outer.cut_at])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/xlsa17.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
