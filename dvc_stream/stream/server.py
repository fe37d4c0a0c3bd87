"""Serves the broker to hooked processes over a Unix socket in a private directory.

Only the user who started ``dvc stream`` can connect: the socket lives in a 0700 directory, and
each connection's peer credentials are checked where the OS reports them (``SO_PEERCRED``).
Every frame is size-bounded and validated; a malformed request is answered with an error or ends
that connection, never the broker, and a client that goes away mid-answer is not an error.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
from typing import TYPE_CHECKING

from dvc_stream.hooks import protocol

if TYPE_CHECKING:
    from collections.abc import Hashable

    from dvc_stream.stream.broker import Broker

logger = logging.getLogger(__name__)


def _peer_uid(sock: socket.socket) -> int | None:
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _check_path(value: object) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise ValueError("'path' must be an absolute path")
    return os.path.normpath(value)


def _check_c_readers(value: object) -> list[str]:
    if not isinstance(value, list) or not all(name in protocol.C_READERS for name in value):
        raise ValueError(f"'c_readers' must be a list of {', '.join(protocol.C_READERS)}")
    return value


def dispatch(broker: Broker, request: object, sender: Hashable = None) -> object:
    """Answer one decoded request; raises ValueError for a malformed one.

    ``sender`` identifies the client connection: its hints are queued one after the other.
    """
    if not isinstance(request, dict) or request.get("op") not in protocol.OPS:
        raise ValueError("unknown operation")
    op = request["op"]
    if op == "hello":
        exact, prefixes = broker.candidates
        return {
            "exact": exact,
            "prefixes": prefixes,
            "read_order": broker.hints_read_order(),
        }
    if op == "prefetch":
        paths = request.get("paths")
        if not isinstance(paths, list):
            raise ValueError("'paths' must be a list")
        broker.prefetch([_check_path(p) for p in paths], sender)
        return None
    path = _check_path(request.get("path"))
    if op != "materialize" and request.get("c_readers"):
        broker.looked_at_by_c_readers(_check_c_readers(request["c_readers"]), path)
    if op == "lookup":
        entry = broker.lookup(path)
        return None if entry is None else entry._asdict()
    if op == "kind":
        return broker.kind(path)
    if op == "listdir":
        return broker.listdir(path)
    return broker.materialize(path)


class _Handler(socketserver.BaseRequestHandler):
    server: BrokerServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        uid = _peer_uid(sock)
        if uid is not None and uid != os.getuid():
            logger.warning("refused a connection from uid %d", uid)
            return
        while True:
            try:
                request = protocol.read_frame(sock, protocol.MAX_REQUEST)
                answer = self._answer(request)
            except protocol.MalformedFrame as exc:
                answer = {"error": {"errno": errno.EINVAL, "message": f"bad request: {exc}"}}
            except (EOFError, OSError, protocol.ProtocolError):
                return
            try:
                sock.sendall(protocol.encode(answer))
            except OSError:  # the client is gone (killed, interrupted)
                return

    def _answer(self, request: object) -> dict:
        try:
            return {"ok": dispatch(self.server.broker, request, id(self))}
        except ValueError as exc:
            return {"error": {"errno": errno.EINVAL, "message": f"bad request: {exc}"}}
        except OSError as exc:
            return {
                "error": {"errno": exc.errno or errno.EIO, "message": exc.strerror or str(exc)}
            }
        except Exception as exc:
            logger.exception("dvc stream broker failed on %r", request)
            return {"error": {"errno": errno.EIO, "message": f"dvc stream: {exc}"}}


# NOTE: `shutdown()` waits for the serving loop to notice, up to this long (0.5 s by default: half
# a second added to every run's exit).
SHUTDOWN_POLL_S = 0.05


class BrokerServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, broker: Broker):
        self.broker = broker
        self.directory = tempfile.mkdtemp(prefix="dvc-stream-")
        os.chmod(self.directory, 0o700)
        self.address = os.path.join(self.directory, "broker.sock")
        super().__init__(self.address, _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            name="dvc-stream-broker",
            daemon=True,
        )

    def handle_error(self, request, client_address) -> None:
        # NOTE: socketserver would print a traceback into the user's terminal.
        logger.debug("dvc stream broker connection failed", exc_info=True)

    def start(self) -> BrokerServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)
