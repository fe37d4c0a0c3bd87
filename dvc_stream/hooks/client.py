"""``Resolver`` over the broker's socket, for processes started by ``dvc stream``.

One connection per thread, dropped in a forked child (which reconnects on first use), so threads
and DataLoader workers never share a socket. Answers about tracked paths are memoized per process:
the manifest does not change during a run.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading

from . import protocol
from .resolver import Entry

_UNKNOWN = object()
HINT_FRAME_PATHS = 4096  # a frame is split further if these paths exceed the request bound


class BrokerClient:
    def __init__(self, address: str):
        self.address = address
        self._local = threading.local()
        self._lookups: dict[str, Entry | None] = {}
        self._kinds: dict[str, str | None] = {}
        self._listings: dict[str, dict[str, str] | None] = {}
        hello = self._call({"op": "hello"})
        self._exact = frozenset(hello["exact"])
        self._prefixes = tuple(hello["prefixes"])
        self._read_order = bool(hello.get("read_order"))
        os.register_at_fork(after_in_child=self._forget_connections)

    def _forget_connections(self) -> None:
        self._local = threading.local()

    def _connection(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.address)
            self._local.sock = sock
        return sock

    def _call(self, request: dict, frame: bytes | None = None):
        try:
            sock = self._connection()
            sock.sendall(frame or protocol.encode(request))
            answer = protocol.read_frame(sock, protocol.MAX_RESPONSE)
        except (OSError, EOFError, protocol.ProtocolError) as exc:
            self._local.sock = None
            raise OSError(
                errno.EIO, f"dvc stream: lost the connection to the broker ({exc})"
            ) from None
        if "error" in answer:
            err = answer["error"]
            code = err.get("errno", errno.EIO)
            path = request.get("path")
            if code == errno.ENOENT:
                raise FileNotFoundError(code, os.strerror(code), path)
            raise OSError(code, err.get("message", "dvc stream error"), path)
        return answer["ok"]

    def is_candidate(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    def lookup(self, path: str) -> Entry | None:
        try:
            return self._lookups[path]
        except KeyError:
            pass
        found = self._call(_with_c_readers({"op": "lookup", "path": path}))
        entry = Entry(**found) if found is not None else None
        self._lookups[path] = entry
        return entry

    def kind(self, path: str) -> str | None:
        entry = self._lookups.get(path, _UNKNOWN)
        if entry is not _UNKNOWN:
            return None if entry is None else entry.type
        try:
            return self._kinds[path]
        except KeyError:
            pass
        kind = self._kinds[path] = self._call(_with_c_readers({"op": "kind", "path": path}))
        return kind

    def listdir(self, path: str) -> dict[str, str] | None:
        try:
            return self._listings[path]
        except KeyError:
            pass
        names = self._call(_with_c_readers({"op": "listdir", "path": path}))
        self._listings[path] = names
        return names

    def hints_read_order(self) -> bool:
        return self._read_order

    def materialize(self, path: str) -> str:
        return self._call({"op": "materialize", "path": path})

    def prefetch(self, paths: list[str]) -> None:
        # NOTE: a whole epoch of a large dataset does not fit in one request frame; the broker
        # queues this connection's frames one after the other, so the order survives the split.
        paths = list(paths)
        for start in range(0, len(paths), HINT_FRAME_PATHS):
            self._send_hint(paths[start : start + HINT_FRAME_PATHS])

    def _send_hint(self, paths: list[str]) -> None:
        request = {"op": "prefetch", "paths": paths}
        frame = protocol.encode(request)
        if len(frame) - protocol.HEADER.size > protocol.MAX_REQUEST and len(paths) > 1:
            half = len(paths) // 2
            self._send_hint(paths[:half])
            self._send_hint(paths[half:])
            return
        self._call(request, frame)


def _with_c_readers(request: dict) -> dict:
    """``request``, with the first C reader of ``protocol.C_READERS`` this process has imported
    (the first only: TensorFlow's Keras imports h5py, and OpenCV where it is installed).

    NOTE: only on a question to the broker, a round trip anyway: never on a memoized answer.
    """
    modules = sys.modules
    for name in protocol.C_READERS:
        if name in modules:
            request["c_readers"] = [name]
            break
    return request
