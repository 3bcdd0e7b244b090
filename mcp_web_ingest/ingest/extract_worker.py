"""Page extraction in worker processes, so that its time limit is real: a worker past it is killed, not awaited.

A thread cannot be stopped, and hostile markup can keep C code (lexbor) or a regex busy for minutes, so the server
sends each page to one of a few ``python -m mcp_web_ingest.ingest.extract_worker`` processes (one per CPU, at most 4)
over its stdin/stdout as length-prefixed JSON (not pickle: nothing a worker sends back can run code in the server).
Past the limit the worker is killed and ExtractError says why. A worker whose peak memory passed MAX_WORKER_RSS (a
huge page) exits after answering, so that memory goes back to the system instead of staying in the server.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats import Extraction, extract_document
from mcp_web_ingest.ingest.formats.html import extract_with_links
from mcp_web_ingest.models import ExtractedPage, Section

__all__ = [
    "MAX_WORKER_RSS",
    "WORKERS",
    "extract_document_isolated",
    "extract_isolated",
    "extract_with_links",
    "peak_rss",
]

WORKERS = max(1, min(4, os.cpu_count() or 1))
MAX_WORKER_RSS = 256 * 1024 * 1024  # peak bytes after which a worker is replaced (real pages peak under 150 MB)
_HEADER = struct.Struct(">Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding mcp_web_ingest/


def peak_rss() -> int:
    """This process's peak resident memory in bytes since it started (VmHWM).

    Not getrusage's ru_maxrss: Linux carries the parent's peak over fork and exec into it, so every worker of a
    server past MAX_WORKER_RSS looked huge and was replaced after each page (measured: a new process per page).
    """
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    data = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")  # lone surrogates survive
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _receive(stream: IO[bytes]) -> dict[str, Any] | None:
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    return None if data is None else json.loads(data.decode("utf-8", "surrogatepass"))


def _page_from_json(data: dict[str, Any]) -> ExtractedPage:
    sections = tuple(Section(**{**s, "path": tuple(s["path"])}) for s in data.pop("sections"))
    return ExtractedPage(sections=sections, **data)


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's loop: one request, one reply, until the server closes the pipe or memory asks for a restart."""
    while (request := _receive(requests)) is not None:
        try:
            data = base64.b64decode(request["data"]) if "data" in request else b""
            found = extract_document(request["format"], request["url"], text=request.get("text", ""), data=data)
            reply: dict[str, Any] = {
                "page": asdict(found.page),
                "links": list(found.links),
                "parts": [[url, asdict(page)] for url, page in found.parts],
            }
        except ExtractError as exc:
            reply = {"error": str(exc)}
        except Exception as exc:  # a bug on one page must not cost the server its worker protocol
            reply = {"error": f"Extracting {request['url']} failed: {type(exc).__name__}: {exc}"}
        reply["recycle"] = peak_rss() > MAX_WORKER_RSS
        _send(replies, reply)
        if reply["recycle"]:
            return


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_web_ingest.ingest.extract_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, request: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Send one request and wait for its reply until ``deadline``; TimeoutError or EOFError otherwise."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, request)
        except (BrokenPipeError, OSError) as exc:
            raise EOFError("the worker is gone") from exc
        fd = self.proc.stdout.fileno()
        buffer = bytearray()
        size: int | None = None
        while size is None or len(buffer) < _HEADER.size + size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError("the worker exited")
            buffer += chunk
            if size is None and len(buffer) >= _HEADER.size:
                size = _HEADER.unpack_from(buffer)[0]
        return json.loads(bytes(buffer[_HEADER.size :]).decode("utf-8", "surrogatepass"))

    def close(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            elif self.proc.stdin is not None:
                self.proc.stdin.close()  # the worker's read ends: it exits on its own
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class _Pool:
    """At most ``size`` workers, each serving one page at a time; started on first use, reused while healthy."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []

    def run(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        with self._slots:  # waiting for a free worker does not count against the page's time limit
            try:
                worker = self._take()
            except OSError as exc:
                raise ExtractError(f"Could not start an extraction worker: {exc}") from exc
            try:
                reply = worker.call(request, time.monotonic() + timeout_s)
            except TimeoutError:
                worker.close(kill=True)
                raise ExtractError(
                    f"Extracting {request['url']} took longer than {timeout_s:g} s (EXTRACT_TIMEOUT_S) and was "
                    "stopped; the page is too large or too deeply nested to index."
                ) from None
            except (EOFError, OSError, ValueError) as exc:
                worker.close(kill=True)
                raise ExtractError(f"Extracting {request['url']} crashed the extraction worker ({exc}).") from None
            if reply.get("recycle"):
                worker.close()
            else:
                with self._lock:
                    self._idle.append(worker)
            return reply

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.close(kill=True)
        return _Worker()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_POOL = _Pool(WORKERS)
atexit.register(_POOL.close)  # idle workers exit when their pipe closes; this also waits for them


def extract_document_isolated(fmt: str, url: str, timeout_s: float, *, text: str = "", data: bytes = b"") -> Extraction:
    """formats.extract_document in a worker process, stopped after ``timeout_s`` seconds with ExtractError."""
    request: dict[str, Any] = {"format": fmt, "url": url}
    if data:
        request["data"] = base64.b64encode(data).decode("ascii")
    else:
        request["text"] = text
    reply = _POOL.run(request, timeout_s)
    if "error" in reply:
        raise ExtractError(reply["error"])
    parts = tuple((part_url, _page_from_json(page)) for part_url, page in reply["parts"])
    return Extraction(_page_from_json(reply["page"]), tuple(reply["links"]), parts)


def extract_isolated(html: str, url: str, timeout_s: float) -> tuple[ExtractedPage, tuple[str, ...]]:
    """extract_with_links of an HTML page in a worker process, stopped after ``timeout_s`` with ExtractError."""
    found = extract_document_isolated("html", url, timeout_s, text=html)
    return found.page, found.links


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle; the closed pipe ends us
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() must not corrupt the replies
    _serve(sys.stdin.buffer, replies)
