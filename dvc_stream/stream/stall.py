"""A download that stops receiving data fails after a bounded time.

Without this, a remote that accepts a request and then sends nothing is waited out by every retry
layer in turn (the S3 client retries a read timeout of 60 s five times, s3fs retries that five
times): over an hour before ``open()`` could raise. Each attempt is watched instead, and one
that has received nothing for ``stall_timeout()`` seconds is abandoned; the fetcher's own
retries then bound the whole wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import suppress

from fsspec.callbacks import Callback

logger = logging.getLogger(__name__)

ENV_STALL_TIMEOUT = "DVC_STREAM_STALL_TIMEOUT"
DEFAULT_STALL_TIMEOUT = 30.0


def stall_timeout() -> float:
    """Seconds without data after which a download attempt fails (``DVC_STREAM_STALL_TIMEOUT``)."""
    value = os.environ.get(ENV_STALL_TIMEOUT)
    if not value:
        return DEFAULT_STALL_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        return seconds
    logger.warning("ignoring %s=%r: not a positive number of seconds", ENV_STALL_TIMEOUT, value)
    return DEFAULT_STALL_TIMEOUT


class _Progress(Callback):
    """Remembers when the transfer last moved: the response head, then every chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.last = time.monotonic()

    def call(self, hook_name=None, **kwargs) -> None:
        self.last = time.monotonic()


async def get_file(fs, rpath: str, lpath: str, timeout: float) -> None:
    """``fs._get_file(rpath, lpath)``, abandoned with ``TimeoutError`` once it has received
    nothing for ``timeout`` seconds."""
    progress = _Progress()
    task = asyncio.ensure_future(fs._get_file(rpath, lpath, callback=progress))
    try:
        while not task.done():
            idle = time.monotonic() - progress.last
            if idle >= timeout:
                raise TimeoutError(f"the remote sent nothing for {timeout:g} s")
            await asyncio.wait({task}, timeout=timeout - idle)
        task.result()
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
