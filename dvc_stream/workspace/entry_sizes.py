"""Sizes of tracked files that are absent, for the ``size`` DVC records beside a hash.

A ``.dir`` tree holds hashes and paths, no sizes: DVC takes a size from the workspace when it
builds an output or a dependency. Where a partial view stands for absent files (a dependency on a
file or a folder inside a partial output, an output with an edit on top of its tracked tree), the
size comes from the cache when the object is there, else, inside ``dvc stream``, from the broker,
which knows every tracked file's size. Otherwise it stays unknown, and DVC records no size, as it
does for a hash it did not build itself.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from dvc_stream.hooks.protocol import ENV_SOCKET
from dvc_stream.hooks.resolver import FILE

if TYPE_CHECKING:
    from dvc.output import Output
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.obj import HashFile

    from dvc_stream.hooks.client import BrokerClient

logger = logging.getLogger(__name__)

_clients: dict[str, BrokerClient] = {}


def with_size(out: Output, fs_path: str, meta: Meta, obj: HashFile) -> Meta:
    """``meta`` of ``obj`` (a file or a tree at ``fs_path``), with its size where it lacks it."""
    from attrs import evolve
    from dvc_data.hashfile.tree import Tree

    if meta.size is not None:
        return meta
    if isinstance(obj, Tree):
        size = tree_size(out, fs_path, obj)
    else:
        size = file_size(out, fs_path, obj.hash_info, None)
    return meta if size is None else evolve(meta, size=size)


def tree_size(out: Output, fs_path: str, tree: HashFile) -> int | None:
    """The total size of the files of ``tree`` (at ``fs_path``); None if one is unknown."""
    total = 0
    for key, meta, hi in tree:
        size = file_size(out, os.path.join(fs_path, *key), hi, meta)
        if size is None:
            return None
        total += size
    return total


def file_size(out: Output, fs_path: str, hi: HashInfo | None, meta: Meta | None) -> int | None:
    """The size of the tracked file ``hi`` at ``fs_path``; None if nothing here knows it."""
    if meta is not None and meta.size is not None:
        return meta.size
    if hi is not None and hi.value:
        try:
            return out.cache.fs.size(out.cache.oid_to_path(hi.value))
        except OSError:
            pass
    return _broker_size(fs_path)


def _broker_size(fs_path: str) -> int | None:
    address = os.environ.get(ENV_SOCKET)
    if not address:
        return None
    try:
        client = _clients.get(address)
        if client is None:
            from dvc_stream.hooks.client import BrokerClient

            client = _clients[address] = BrokerClient(address)
        entry = client.lookup(os.path.abspath(fs_path))
    except OSError as exc:
        logger.debug("no size for '%s' from dvc stream: %s", fs_path, exc)
        return None
    return entry.size if entry is not None and entry.type == FILE else None
