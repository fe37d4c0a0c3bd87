"""Asking the resolver about a path the original function could not find, without recursion.

Standard library only, like the rest of ``hooks/``. A thread-local flag (``use_original``) makes
every hook call straight through while the resolver, or the hooks' own I/O, runs.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import TYPE_CHECKING, Any

from . import _stat
from .resolver import DIR, FILE

if TYPE_CHECKING:
    from collections.abc import Callable

    from .resolver import Entry, Resolver


def _debug(message: str, *args: Any) -> None:
    """Log a hook's failure; ``logging`` is imported only then, as a started program need not
    import it at all."""
    import logging

    logging.getLogger(__name__).debug(message, *args, exc_info=True)


# NOTE: captured at import, before install(): the hooks' own I/O never goes through the hooks.
_getcwd = os.getcwd
_normpath = os.path.normpath
_fspath = os.fspath
_lstat = os.lstat
_makedirs = os.makedirs


class _Local(threading.local):
    busy = False  # NOTE: a class default: reading it costs no AttributeError in new threads


_tls = _Local()


class Guard:
    __slots__ = ("_prev",)

    def __enter__(self) -> None:
        self._prev = _tls.busy
        _tls.busy = True

    def __exit__(self, *exc_info: object) -> None:
        _tls.busy = self._prev


def use_original() -> Guard:
    """Context manager: in this thread, every hook calls straight through to the original."""
    return Guard()


_POSIX = os.name == "posix"

if _POSIX:

    def absolute(path: str) -> str:
        if path[:1] != "/":
            cwd = _getcwd()
            if path == ".":
                return cwd
            path = (cwd if cwd != "/" else "") + "/" + path
        if "/." in path or "//" in path or (path[-1:] == "/" and path != "/"):
            return _normpath(path)
        return path

else:  # pragma: no cover
    absolute = os.path.abspath


def candidate(path: Any, get: Callable[[], Resolver | None]) -> str | None:
    """The absolute path if the resolver should be asked about ``path``, else None."""
    if _tls.busy or isinstance(path, int):  # NOTE: a file descriptor is never tracked
        return None
    try:
        if type(path) is not str:
            path = _fspath(path)
            if type(path) is not str:
                return None
        if not path:
            return None
        if _POSIX and path[0] == "/":  # NOTE: absolute() inlined for the common case
            if "/." in path or "//" in path or (path[-1] == "/" and path != "/"):
                path = _normpath(path)
        else:
            path = absolute(path)
        resolver = get()
        if resolver is not None and resolver.is_candidate(path):
            return path
    except Exception:
        _debug("hooks: candidate check failed for %r", path)
    return None


def ask(get: Callable[[], Resolver | None], method: str, path: str) -> Any:
    """``resolver.method(path)`` under the guard; None if it breaks with a non-OSError."""
    resolver = get()
    if resolver is None:
        return None
    with Guard():
        try:
            return getattr(resolver, method)(path)
        except OSError:
            raise
        except Exception:
            _debug("hooks: resolver.%s(%r) failed", method, path)
            return None


def absent_entry(path: Any, get: Callable) -> tuple[str, Entry] | None:
    abs_path = candidate(path, get)
    if abs_path is None:
        return None
    entry = ask(get, "lookup", abs_path)
    return None if entry is None else (abs_path, entry)


def kind_of(original: Callable[..., bool], args: tuple, kwargs: dict, get: Callable) -> str | bool:
    """For ``os.path.exists`` and its kin: True if ``original(*args, **kwargs)`` holds, else the
    tracked kind of the path (FILE, DIR), else False. A tracked file's kind needs no size
    request."""
    tls = _tls
    busy, tls.busy = tls.busy, True  # NOTE: Guard inlined: this runs for every path
    try:
        if original(*args, **kwargs):
            return True
    finally:
        tls.busy = busy
    abs_path = candidate(args[0] if args else kwargs.get("path"), get)
    if abs_path is None:
        return False
    try:
        return ask(get, "kind", abs_path) or False
    except OSError:
        return False


def tracked_stat(path: Any, get: Callable) -> os.stat_result | None:
    found = absent_entry(path, get)
    return None if found is None else _stat.fake_stat(*found)


def stat_now(path: str) -> os.stat_result:
    return os.stat(path)


# -- opening ------------------------------------------------------------------------------------


def make_parent(abs_path: str, get: Callable) -> bool:
    """Create the missing parents of ``abs_path`` if its parent is a tracked directory."""
    parent = os.path.dirname(abs_path)
    entry = ask(get, "lookup", parent)
    if entry is None or entry.type != DIR:
        return False
    with Guard():
        _makedirs(parent, exist_ok=True)
    return True


def retry_path(file: Any, creating: bool, get: Callable) -> Any:
    """What to open after the original raised FileNotFoundError; None to re-raise it."""
    abs_path = candidate(file, get)
    if abs_path is None:
        return None
    if creating:
        return file if make_parent(abs_path, get) else None
    resolver = get()
    with Guard():
        try:
            local = resolver.materialize(abs_path)
        except FileNotFoundError:
            local = None
    if local is None:
        entry = ask(get, "lookup", abs_path)
        if entry is not None and entry.type == DIR:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), file)
        return None
    return file if local == abs_path else local


def present(abs_path: str) -> bool:
    """Whether ``abs_path`` is really there (a broken symlink counts)."""
    try:
        _lstat(abs_path)
    except FileNotFoundError:
        return False
    return True


def before_create(file: Any, exclusive: bool, get: Callable) -> None:
    """Appending to (or exclusively creating) an absent tracked file: fetch it first."""
    abs_path = candidate(file, get)
    if abs_path is None:
        return
    try:
        if present(abs_path):
            return
    except OSError:
        return
    entry = ask(get, "lookup", abs_path)
    if entry is None or entry.type != FILE:
        return
    if exclusive:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), file)
    with Guard():
        get().materialize(abs_path)


def tracked_names(path: Any, get: Callable) -> tuple[str, dict[str, str]] | None:
    """(absolute path, tracked children) of a directory that may hold tracked names."""
    abs_path = candidate("." if path is None else path, get)
    if abs_path is None:
        return None
    names = ask(get, "listdir", abs_path)
    return None if names is None else (abs_path, names)
