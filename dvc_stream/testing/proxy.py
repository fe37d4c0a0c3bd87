"""An HTTP/1.1 delay line with fault injection, in front of the moto server.

``tc netem`` and toxiproxy are unavailable on our CI boxes, so this emulates a remote S3 on
loopback: each chunk is timestamped on arrival and released ``rtt_ms / 2`` later (pipelined, so
the delay does not throttle throughput), the downstream direction can be capped by a token
bucket, and requests are parsed (not just bytes counted) so tests can count them and make chosen
ones fail. asyncio, standard library only, loop on a daemon thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
SHAPED_CHUNK = 16 * 1024
FAULT_KINDS = ("status", "reset", "drop", "stall")
_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_CLOSE_FIN, _CLOSE_RST = "fin", "rst"


@dataclass
class Fault:
    """One fault rule; fires on the next ``times`` matching requests, then is discarded."""

    kind: str
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    after_bytes: int = 0
    stall_s: float = 0.0
    status: int = 503

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class _Plan:
    """What to do with the response to one request."""

    method: str
    path: str
    fault: Fault | None
    close: bool = False


@dataclass
class _Head:
    start_line: str
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return cls(lines[0], headers)

    def closes(self) -> bool:
        """Whether the connection ends after this message (HTTP/1.0 or ``Connection: close``)."""
        connection = self.headers.get("connection", "").lower()
        if self.start_line.startswith("HTTP/1.0") or self.start_line.endswith("HTTP/1.0"):
            return "keep-alive" not in connection
        return "close" in connection

    def framing(self) -> tuple[str, int]:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return ("chunked", 0)
        if "content-length" in self.headers:
            return ("length", int(self.headers["content-length"]))
        return ("close", 0)


def _request_framing(head: _Head) -> tuple[str, int]:
    kind, n = head.framing()
    return ("length", 0) if kind == "close" else (kind, n)


def _response_framing(head: _Head, method: str) -> tuple[str, int]:
    status = int(head.start_line.split(" ", 2)[1])
    if method == "HEAD" or status < 200 or status in (204, 304):
        return ("length", 0)
    return head.framing()


def _request_target(start_line: str) -> tuple[str, str]:
    method, _, rest = start_line.partition(" ")
    target = rest.rsplit(" ", 1)[0]
    if "://" in target:  # absolute-form: keep only the path
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    return method.upper(), target


async def _iter_body(
    reader: asyncio.StreamReader, framing: tuple[str, int]
) -> AsyncIterator[bytes]:
    kind, length = framing
    if kind == "length":
        async for piece in _iter_exactly(reader, length):
            yield piece
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(_CRLF)
            yield line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            async for piece in _iter_exactly(reader, size + 2):
                yield piece
        while (line := await reader.readuntil(_CRLF)) != _CRLF:  # trailers
            yield line
        yield line
    else:
        while piece := await reader.read(CHUNK):
            yield piece


async def _iter_exactly(reader: asyncio.StreamReader, n: int) -> AsyncIterator[bytes]:
    while n > 0:
        piece = await reader.read(min(n, CHUNK))
        if not piece:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(piece)
        yield piece


def _error_response(status: int, method: str) -> bytes:
    codes = {500: "InternalError", 503: "ServiceUnavailable", 429: "SlowDown"}
    code = codes.get(status, "InjectedFault")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
        f"{code}</Code><Message>injected by dvc-stream LatencyProxy</Message>"
        "<RequestId>dvc-stream-proxy</RequestId></Error>"
    ).encode()
    phrase = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else ""
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if method == "HEAD" else head + body


class _Connection:
    """One client connection and its upstream twin: two pumps, two delay lines."""

    def __init__(self, proxy: LatencyProxy, client: tuple, upstream: tuple) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream
        self.plans: asyncio.Queue[_Plan | None] = asyncio.Queue()
        self.up_line: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        self.down_line: asyncio.Queue[tuple[float, bytes | str]] = asyncio.Queue()

    async def run(self) -> None:
        helpers = [
            asyncio.ensure_future(self._pump_requests()),
            asyncio.ensure_future(self._write_upstream()),
            asyncio.ensure_future(self._pump_responses()),
        ]
        try:
            await self._write_downstream()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.up_writer.close()
            if not self.client_writer.is_closing():
                self.client_writer.close()

    def _stamp(self) -> float:
        return time.monotonic() + self.proxy.rtt_ms / 2000.0

    async def _pump_requests(self) -> None:
        try:
            while True:
                raw = await self.client_reader.readuntil(_HEAD_END)
                self.proxy.bytes_up += len(raw)
                head = _Head.parse(raw)
                method, path = _request_target(head.start_line)
                plan = _Plan(method, path, self.proxy._take_fault(method, path), head.closes())
                self.proxy._record(method, path)
                await self.plans.put(plan)
                forward = plan.fault is None or plan.fault.kind != "status"
                if forward:
                    self.up_line.put_nowait((self._stamp(), raw))
                async for piece in _iter_body(self.client_reader, _request_framing(head)):
                    self.proxy.bytes_up += len(piece)
                    if forward:
                        self.up_line.put_nowait((self._stamp(), piece))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self.plans.put_nowait(None)

    async def _write_upstream(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                due, data = await self.up_line.get()
                await _sleep_until(due)
                self.up_writer.write(data)
                await self.up_writer.drain()

    async def _pump_responses(self) -> None:
        ending = _CLOSE_FIN
        try:
            while (plan := await self.plans.get()) is not None:
                fault = plan.fault
                if fault is not None and fault.kind == "status":
                    # NOTE: never forwarded, so the whole round trip is spent here.
                    due = self._stamp() + self.proxy.rtt_ms / 2000.0
                    self.down_line.put_nowait((due, _error_response(fault.status, plan.method)))
                    break
                if fault is not None and fault.kind == "stall":
                    await asyncio.sleep(fault.stall_s)
                if await self._forward_response(plan):
                    if fault is not None and fault.kind == "reset":
                        ending = _CLOSE_RST
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # NOTE: upstream closed (e.g. idle keep-alive): the client sees a clean close
        finally:
            self.down_line.put_nowait((self._stamp(), ending))

    async def _forward_response(self, plan: _Plan) -> bool:
        """Forward one response; True when the connection must end after it (fault, no length)."""
        fault = plan.fault if plan.fault and plan.fault.kind in ("reset", "drop") else None
        budget = [fault.after_bytes if fault else 0]

        def emit(data: bytes, is_head: bool) -> bool:
            if fault is None or (is_head and fault.kind == "drop"):
                self.down_line.put_nowait((self._stamp(), data))
                return False
            take = min(len(data), budget[0])
            budget[0] -= take
            if take:
                self.down_line.put_nowait((self._stamp(), data[:take]))
            return take < len(data) or budget[0] == 0

        while True:  # skip interim 1xx responses
            raw = await self.up_reader.readuntil(_HEAD_END)
            head = _Head.parse(raw)
            if emit(raw, is_head=True):
                return True
            if int(head.start_line.split()[1]) >= 200:
                break
        framing = _response_framing(head, plan.method)
        async for piece in _iter_body(self.up_reader, framing):
            if emit(piece, is_head=False):
                return True
        return fault is not None or framing[0] == "close" or plan.close or head.closes()

    async def _write_downstream(self) -> None:
        try:
            while True:
                due, item = await self.down_line.get()
                await _sleep_until(due)
                if isinstance(item, str):
                    await self._close_client(item)
                    return
                for start in range(0, len(item), SHAPED_CHUNK):
                    piece = item[start : start + SHAPED_CHUNK]
                    await self.proxy._shape(len(piece))
                    self.proxy.bytes_down += len(piece)  # NOTE: before the client can see it
                    self.client_writer.write(piece)
                    await self.client_writer.drain()
        except ConnectionError:
            return

    async def _close_client(self, how: str) -> None:
        writer = self.client_writer
        if how == _CLOSE_RST:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def _sleep_until(due: float) -> None:
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class LatencyProxy:
    """Delay, bandwidth cap, request counting and fault injection in front of an HTTP server."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        rtt_ms: float = 0.0,
        bandwidth_mbit: float | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.rtt_ms = rtt_ms
        self.bandwidth_mbit = bandwidth_mbit
        self.host = "127.0.0.1"
        self.port = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._link_free_at = 0.0
        self.reset_counters()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset_counters(self) -> None:
        self.requests = 0
        self.requests_by_method: collections.Counter[str] = collections.Counter()
        self.request_log: list[tuple[str, str]] = []
        self.bytes_down = 0
        self.bytes_up = 0

    # -- faults ---------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        after_bytes: int = 0,
        stall_s: float = 0.0,
        status: int = 503,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method`` and ``path_contains`` fail.

        ``status``: answer with an S3-style error without forwarding; ``reset``: RST after
        ``after_bytes`` of the response; ``drop``: FIN after ``after_bytes`` of the body;
        ``stall``: hold the response ``stall_s`` seconds.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}, expected one of {FAULT_KINDS}")
        fault = Fault(kind, method, path_contains, times, after_bytes, stall_s, status)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    logger.debug("injecting %s fault into %s %s", fault.kind, method, path)
                    return fault
        return None

    def _record(self, method: str, path: str) -> None:
        self.requests += 1
        self.requests_by_method[method] += 1
        self.request_log.append((method, path))

    async def _shape(self, nbytes: int) -> None:
        """Token bucket on the downstream link, shared by all connections."""
        if not self.bandwidth_mbit:
            return
        # NOTE: a chunk arrives when its last bit has crossed the link, not when its first did.
        start = max(time.monotonic(), self._link_free_at)
        self._link_free_at = start + nbytes * 8 / (self.bandwidth_mbit * 1e6)
        await _sleep_until(self._link_free_at)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LatencyProxy:
        if self._thread is not None:
            return self
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._accept, self.host, 0, limit=1 << 20)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="LatencyProxy", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            self._thread = None
            raise errors[0]
        logger.debug(
            "proxy %s -> %s:%s", self.endpoint_url, self.upstream_host, self.upstream_port
        )
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            upstream = await asyncio.open_connection(
                self.upstream_host, self.upstream_port, limit=1 << 20
            )
        except OSError:
            logger.warning("proxy cannot reach %s:%s", self.upstream_host, self.upstream_port)
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await _Connection(self, (reader, writer), upstream).run()
        except asyncio.CancelledError:  # NOTE: stop(); asyncio.streams logs a cancelled handler
            pass
        finally:
            self._tasks.discard(task)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
