"""The broker's wire protocol: length-prefixed JSON frames over a local stream socket.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Each request is
an object with ``"op"`` and its arguments; each answer is ``{"ok": value}`` or
``{"error": {"errno": int, "message": str}}``. Operations:

- ``hello`` -> ``{"exact": [paths], "prefixes": [dir + "/"]}``: what ``is_candidate`` checks.
- ``lookup`` ``path`` -> ``{"type", "size", "mtime", "isexec"}`` or null.
- ``kind`` ``path`` -> ``"file"``, ``"dir"`` or null: ``lookup`` without the size.
- ``listdir`` ``path`` -> ``{name: "file" | "dir"}`` or null.
- ``materialize`` ``path`` -> the local path to open, once the file is in the workspace.
- ``prefetch`` ``paths`` -> null; a hint, answered at once. Each connection's hints are queued
  one after the other, so a hint too long for one frame is sent as several, in order.

``lookup``, ``kind`` and ``listdir`` may carry ``"c_readers"``: a module of ``C_READERS`` that
the asking process had imported. Such a program may open the files it lists from C, where the
hooks cannot see it, and ``dvc stream`` then suggests ``--mount`` at the end of the run.

Requests are bounded by ``MAX_REQUEST`` bytes: a larger frame closes the connection, since its
body cannot be skipped cheaply; a frame of the right size whose body is not JSON is answered with
an error, and the connection goes on.
"""

from __future__ import annotations

import json
import struct

HEADER = struct.Struct(">I")
MAX_REQUEST = 1 << 20
MAX_RESPONSE = 1 << 30
OPS = ("hello", "lookup", "kind", "listdir", "materialize", "prefetch")
# Libraries that open files by path in C or C++, out of the hooks' sight; the first one imported is
# named (Keras imports h5py, and OpenCV where it is installed).
C_READERS = ("tensorflow", "cv2", "h5py")

ENV_SOCKET = "DVC_STREAM_SOCKET"
ENV_ROOT = "DVC_STREAM_ROOT"  # the root of the repository the broker serves
ENV_HOOKS_DIR = "DVC_STREAM_HOOKS"
# the broker's options given to `dvc stream` (JSON), for a broker of an experiment's copy
ENV_OPTIONS = "DVC_STREAM_OPTIONS"


class ProtocolError(Exception):
    """A frame that is too large, truncated, or not the JSON object it should be."""


class MalformedFrame(ProtocolError):
    """A complete frame whose body is not JSON; the stream is still in step."""


def encode(message: object) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def _recv_exact(sock, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, limit: int) -> object:
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    if size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
    body = _recv_exact(sock, size)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # NOTE: deep nesting exhausts the stack
        raise MalformedFrame(f"malformed frame: {type(exc).__name__}: {exc}") from None
