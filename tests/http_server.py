"""A real HTTP server on 127.0.0.1 for the download tests (no test touches the internet).

`FileServer` serves byte strings the tests make, records every request with its Range header (and all
its headers), counts every connection (any method, even one it cannot parse), and can misbehave on
purpose: cut a transfer after N bytes, ignore Range, answer slowly, trickle the body a byte at a time,
send no Content-Length, hang up without answering.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Route:
    """One file the server offers and how it misbehaves."""

    body: bytes
    ranges: bool = True  # False: ignore Range and always answer 200 with the whole body
    cut_after: int | None = None  # send only this many body bytes, then close the connection
    cut_always: bool = False  # cut every response, not only the first
    delay: float = 0.0  # seconds to wait before answering
    trickle_after: int | None = None  # send this many body bytes at once, then one byte per `trickle_every`
    trickle_every: float = 0.5
    length: bool = True  # False: no Content-Length; the body ends when the connection closes
    hang_up: bool = False  # close the connection without sending a response


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        number = owner.record(self.path, self.headers.get("Range"), dict(self.headers.items()))
        route = owner.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        if route.hang_up:
            self.close_connection = True
            return
        time.sleep(route.delay)
        start = self._range_start(route)
        if start is not None and start >= len(route.body):
            self.send_error(416, "Range Not Satisfiable")
            return
        body = route.body[start or 0 :]
        self.send_response(206 if start is not None else 200)
        if route.length:
            self.send_header("Content-Length", str(len(body)))
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
        self.end_headers()
        if route.cut_after is not None and (route.cut_always or number == 1):
            self.wfile.write(body[: route.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        if route.trickle_after is not None:
            self._trickle(body, route)
            return
        self.wfile.write(body)

    def _trickle(self, body: bytes, route: Route) -> None:
        """The first `trickle_after` bytes at once, then a byte at a time until the client gives up."""
        self.close_connection = True
        try:
            self.wfile.write(body[: route.trickle_after])
            self.wfile.flush()
            for index in range(route.trickle_after or 0, len(body)):
                if self.server.owner.closing.wait(route.trickle_every):
                    return
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
        except OSError:  # the client hung up: what a trickle is for
            return

    def _range_start(self, route: Route) -> int | None:
        header = self.headers.get("Range")
        if not route.ranges or not header or not header.startswith("bytes=") or not header.endswith("-"):
            return None
        return int(header[len("bytes=") : -1])

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner.connections += 1
        super().process_request(request, client_address)


class FileServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) in a thread, for the length of a `with`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.headers: list[dict[str, str]] = []  # every request's headers, in the order of `requests`
        self.connections = 0  # every connection accepted, whatever was (or was not) asked on it
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add(self, path: str, body: bytes, **options: object) -> str:
        """Serve `body` at `path`; return its URL."""
        self.routes[path] = Route(body, **options)  # type: ignore[arg-type]
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def record(self, path: str, range_header: str | None, headers: dict[str, str]) -> int:
        """Note a request; return how many requests `path` has had, this one included."""
        with self._lock:
            self.requests.append((path, range_header))
            self.headers.append(headers)
            return sum(1 for seen, _ in self.requests if seen == path)

    def ranges(self, path: str) -> list[str | None]:
        """The Range header of each request for `path`, in order."""
        with self._lock:
            return [header for seen, header in self.requests if seen == path]


def closed_port_url(path: str = "/file") -> str:
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
