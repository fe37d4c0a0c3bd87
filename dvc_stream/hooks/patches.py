"""The one table of what the hooks patch, and the replacement functions.

Every file-system replacement first calls the original, with the arguments as they came
(``*args, **kwargs``), so that an invalid call fails there with the original's own message. Only
when the original says the path is missing (``FileNotFoundError``), or lists a directory that may
hold tracked names, does it ask the ``Resolver``, and only for paths that
``Resolver.is_candidate`` accepts. The local copy wins. Where no tracked path is involved,
nothing tells a replacement from its original (``_lookalike``). One entry is not about paths:
PyTorch's ``DataLoader``, patched when torch is imported, hints its sampler's order
(``read_order``). Standard library only: this module must import without dvc, on Python 3.10 to
3.13.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _lookalike, _stat, _tracked, read_order
from ._tracked import use_original
from .resolver import DIR, FILE

if TYPE_CHECKING:
    from collections.abc import Callable

    from .resolver import Resolver

__all__ = [
    "PATCHES",
    "Patch",
    "applicable",
    "install",
    "installed",
    "original",
    "uninstall",
    "use_original",
]

_resolver: Resolver | None = None
# (owner, attribute, value before install or _MISSING); in install order
_saved: list[tuple[Any, str, Any]] = []
# one replacement per (factory, original), and what each replacement stands for, while installed
_made: dict[tuple[Any, int], Any] = {}
_replaced: dict[int, Any] = {}  # id(replacement) -> the raw value it replaced
# (os.supports_* set, replacement added to it); in install order
_joined: list[tuple[set, Any]] = []
_MISSING = object()

# NOTE: captured at import, before install(): the hooks' own I/O never goes through the hooks.
_fspath = os.fspath
_makedirs = os.makedirs


# When an entry of ``PATCHES`` applies:
AT_INSTALL = "at install"  # always, when the hooks are installed
IF_LOADED = "if loaded"  # at install, only if its module is imported by then
ON_IMPORT = "on import"  # at install if its module is imported, else right after it is


class Patch(NamedTuple):
    """One entry of ``PATCHES``.

    ``target`` is a module (``os.path``) or a class in one (``pathlib:_NormalAccessor``);
    ``factory(original, resolver_getter)`` returns the replacement of ``target.name``. Functions
    set on a class are made static. ``IF_LOADED`` is for modules that copied a name at their own
    import, before the hooks were installed; ``ON_IMPORT`` for libraries that a program may
    import later, or never: installing the hooks must not import them.
    """

    target: str
    name: str
    factory: Callable[[Any, Callable[[], Resolver | None]], Any]
    when: str = AT_INSTALL

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]


def _make_open(original: Callable, get: Callable) -> Callable:
    def open(*args, **kwargs):
        mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
        if type(mode) is str and ("a" in mode or "x" in mode):
            _tracked.before_create(_arg(args, kwargs, 0, "file"), "x" in mode, get)
        try:
            return original(*args, **kwargs)
        except FileNotFoundError:
            creating = type(mode) is str and ("w" in mode or "a" in mode or "x" in mode)
            retry = _tracked.retry_path(_arg(args, kwargs, 0, "file"), creating, get)
            if retry is None:
                raise
        return _call_with(original, args, kwargs, "file", retry)

    return open


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    """The argument at ``index``, or passed by ``name``; None if absent."""
    return args[index] if len(args) > index else kwargs.get(name)


def _call_with(original: Callable, args: tuple, kwargs: dict, name: str, first: Any) -> Any:
    """``original`` called again with its first argument (``name``) replaced by ``first``."""
    if args:
        return original(first, *args[1:], **kwargs)
    return original(**{**kwargs, name: first})


def _make_fileio(original: type, get: Callable) -> type:
    class _Meta(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, original)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, original)

    # NOTE: a subclass, so ``io.FileIO(path)`` can fetch; isinstance checks against the patched
    # name still accept every real FileIO through the metaclass.
    class FileIO(original, metaclass=_Meta):
        def __init__(self, *args, **kwargs):
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
            if type(mode) is str and ("a" in mode or "x" in mode):
                _tracked.before_create(_arg(args, kwargs, 0, "file"), "x" in mode, get)
            try:
                return super().__init__(*args, **kwargs)
            except FileNotFoundError:
                creating = type(mode) is str and ("w" in mode or "a" in mode or "x" in mode)
                retry = _tracked.retry_path(_arg(args, kwargs, 0, "file"), creating, get)
                if retry is None:
                    raise
            return _call_with(super().__init__, args, kwargs, "file", retry)

    return FileIO


_CREATE_FLAGS = os.O_CREAT | os.O_TRUNC


def _make_os_open(original: Callable, get: Callable) -> Callable:
    def open(*args, **kwargs):
        flags = _arg(args, kwargs, 1, "flags")
        dir_fd = kwargs.get("dir_fd")
        if type(flags) is int and flags & _CREATE_FLAGS == os.O_CREAT and dir_fd is None:
            _tracked.before_create(_arg(args, kwargs, 0, "path"), bool(flags & os.O_EXCL), get)
        try:
            return original(*args, **kwargs)
        except FileNotFoundError:
            creating = bool(flags & os.O_CREAT)
            path = _arg(args, kwargs, 0, "path")
            retry = None if dir_fd is not None else _tracked.retry_path(path, creating, get)
            if retry is None:
                raise
        return _call_with(original, args, kwargs, "path", retry)

    return open


# -- metadata -----------------------------------------------------------------------------------


def _make_stat(original: Callable, get: Callable) -> Callable:
    def stat(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except FileNotFoundError:
            if kwargs.get("dir_fd") is None:
                result = _tracked.tracked_stat(_arg(args, kwargs, 0, "path"), get)
                if result is not None:
                    return result
            raise

    return stat


def _make_exists(original: Callable, get: Callable) -> Callable:
    def exists(*args, **kwargs):
        return _tracked.kind_of(original, args, kwargs, get) is not False

    return exists


def _make_isfile(original: Callable, get: Callable) -> Callable:
    def isfile(*args, **kwargs):
        found = _tracked.kind_of(original, args, kwargs, get)
        return found is True or found == FILE

    return isfile


def _make_isdir(original: Callable, get: Callable) -> Callable:
    def isdir(*args, **kwargs):
        found = _tracked.kind_of(original, args, kwargs, get)
        return found is True or found == DIR

    return isdir


def _make_access(original: Callable, get: Callable) -> Callable:
    def access(*args, **kwargs):
        if original(*args, **kwargs):
            return True
        if kwargs.get("dir_fd") is not None:
            return False
        try:
            found = _tracked.absent_entry(_arg(args, kwargs, 0, "path"), get)
            if found is None or _tracked.present(found[0]):
                return False  # untracked, or present locally: the original's answer stands
        except OSError:
            return False
        entry = found[1]
        return not (_arg(args, kwargs, 1, "mode") & os.X_OK) or entry.type == DIR or entry.isexec

    return access


def _make_chdir(original: Callable, get: Callable) -> Callable:
    def chdir(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except FileNotFoundError:
            found = _tracked.absent_entry(_arg(args, kwargs, 0, "path"), get)
            if found is None or found[1].type != DIR:
                raise
            with _tracked.Guard():
                _makedirs(found[0], exist_ok=True)
        return original(*args, **kwargs)

    return chdir


def _make_sqlite_connect(original: Callable, get: Callable) -> Callable:
    # NOTE: SQLite opens the file in C, and creates a database file that is missing: an empty
    # local file that would then hide the tracked one. An absent tracked file is fetched first.
    def connect(database, *args, **kwargs):
        uri = kwargs.get("uri", args[6] if len(args) > 6 else False)
        path = _sqlite_path(database, uri)
        if path is not None:
            _tracked.before_create(path, False, get)
        return original(database, *args, **kwargs)

    return connect


def _sqlite_path(database: Any, uri: Any) -> str | None:
    """The file that ``sqlite3.connect(database, uri=uri)`` opens; None for a memory database."""
    try:
        name = _fspath(database)
    except TypeError:
        return None
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if uri and name.startswith("file:"):
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(name)
        if parse_qs(parts.query).get("mode") == ["memory"]:
            return None
        name = unquote(parts.path)
    return None if name in ("", ":memory:") else name


# -- listings -----------------------------------------------------------------------------------


def _make_listdir(original: Callable, get: Callable) -> Callable:
    def listdir(*args, **kwargs):
        try:
            names = original(*args, **kwargs)
        except FileNotFoundError:
            tracked = _tracked.tracked_names(_arg(args, kwargs, 0, "path"), get)
            if tracked is None:
                raise
            return sorted(tracked[1])
        tracked = _tracked.tracked_names(_arg(args, kwargs, 0, "path"), get)
        if tracked is not None:
            names += _stat.missing_names(tracked[1], names)
        return names

    return listdir


def _fake_entries(path: Any, abs_path: str, names: list[str], tracked: dict) -> list:
    top = "." if path is None else _fspath(path)
    return [_stat.FakeDirEntry(top, n, tracked[n], abs_path, _tracked.stat_now) for n in names]


def _make_scandir(original: Callable, get: Callable) -> Callable:
    def scandir(*args, **kwargs):
        path = _arg(args, kwargs, 0, "path")
        try:
            entries = original(*args, **kwargs)
        except FileNotFoundError:
            tracked = _tracked.tracked_names(path, get)
            if tracked is None:
                raise
            abs_path, names = tracked
            return _stat.MergedScandir(_fake_entries(path, abs_path, sorted(names), names))
        tracked = _tracked.tracked_names(path, get)
        if tracked is None:
            return entries
        with entries:
            local = list(entries)
        abs_path, names = tracked
        missing = _stat.missing_names(names, [entry.name for entry in local])
        return _stat.MergedScandir(local + _fake_entries(path, abs_path, missing, names))

    return scandir


# -- the table ----------------------------------------------------------------------------------

PATCHES: list[Patch] = [
    Patch("builtins", "open", _make_open),
    Patch("io", "open", _make_open),
    Patch("io", "FileIO", _make_fileio),
    Patch("os", "open", _make_os_open),
    Patch("os", "stat", _make_stat),
    Patch("os", "lstat", _make_stat),
    Patch("os", "access", _make_access),
    Patch("os", "listdir", _make_listdir),
    Patch("os", "scandir", _make_scandir),
    Patch("os", "chdir", _make_chdir),
    # NOTE: these four would work through os.stat too, but a tracked file's stat needs its size:
    # a metadata request to the remote, which an existence check should not cost.
    Patch("os.path", "exists", _make_exists),
    Patch("os.path", "lexists", _make_exists),
    Patch("os.path", "isfile", _make_isfile),
    Patch("os.path", "isdir", _make_isdir),
    # NOTE: IPython gives notebook cells an `open` that calls its own `io_open`, bound when
    # IPython was imported; hooks installed from a cell come later. A kernel started under
    # `dvc stream` imports IPython after the hooks and binds the patched io.open.
    Patch("IPython.core.interactiveshell", "io_open", _make_open, when=IF_LOADED),
    # NOTE: `sqlite3` copies `connect` from `sqlite3.dbapi2` (which SQLAlchemy calls); both names
    # get the one replacement, and both get the original back.
    Patch("sqlite3.dbapi2", "connect", _make_sqlite_connect, when=ON_IMPORT),
    Patch("sqlite3", "connect", _make_sqlite_connect, when=ON_IMPORT),
    # NOTE: a DataLoader draws each epoch's order in the main process, then its workers open
    # the files one at a time: the order, hinted ahead, lets them be downloaded in parallel.
    Patch(
        "torch.utils.data.dataloader:DataLoader",
        "_index_sampler",
        read_order.make_index_sampler,
        when=ON_IMPORT,
    ),
    # NOTE: os.walk, glob.glob, shutil.copy*, the rest of os.path and (3.11+) pathlib look these
    # os/io names up at call time, so they need no entries of their own.
]
"""Everything the hooks patch, in install order (``uninstall`` goes in reverse)."""

if sys.version_info < (3, 11):
    # 3.10: Path methods go through pathlib._NormalAccessor, whose class attributes are the
    # os/io functions as they were when pathlib was imported. On import: pathlib (with urllib
    # and ipaddress) is not imported for a program that does not use it.
    PATCHES += [
        Patch("pathlib:_NormalAccessor", "stat", _make_stat, when=ON_IMPORT),
        Patch("pathlib:_NormalAccessor", "open", _make_open, when=ON_IMPORT),
        Patch("pathlib:_NormalAccessor", "listdir", _make_listdir, when=ON_IMPORT),
        Patch("pathlib:_NormalAccessor", "scandir", _make_scandir, when=ON_IMPORT),
    ]
if sys.version_info >= (3, 13):
    # 3.13: Path.glob/rglob use glob._StringGlobber, which keeps its own os.lstat/os.scandir.
    # pathlib._local itself calls os.* and io.open at call time.
    PATCHES += [
        Patch("glob:_StringGlobber", "lstat", _make_stat),
        Patch("glob:_StringGlobber", "scandir", _make_scandir),
    ]


# -- install / uninstall ------------------------------------------------------------------------


def _resolve(target: str) -> Any:
    """``module`` or ``module:Class`` -> the object, importing the module if need be."""
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def _current_resolver() -> Resolver | None:
    return _resolver


def _raw(owner: Any, name: str) -> Any:
    if isinstance(owner, type):
        return vars(owner).get(name, _MISSING)
    return getattr(owner, name, _MISSING)


def _unwrap(value: Any) -> Any:
    # NOTE: only a plain staticmethod: a ``_lookalike.Replacement`` is one too, and stands as is
    return value.__func__ if type(value) is staticmethod else value


def applicable() -> list[Patch]:
    """The entries of ``PATCHES`` that ``install()`` applies in this process now."""
    return [p for p in PATCHES if p.when == AT_INSTALL or p.module in sys.modules]


def install(resolver: Resolver) -> None:
    """Apply every patch of ``PATCHES`` for ``resolver``; again: switch to ``resolver``.

    ``ON_IMPORT`` entries whose module is not imported yet are applied when it is.
    """
    global _resolver
    _resolver = resolver
    if _saved:
        return
    try:
        _apply(applicable())
        waiting = [p for p in PATCHES if p.when == ON_IMPORT and p.module not in sys.modules]
        if waiting:
            _watcher.watch(waiting)
            sys.meta_path.insert(0, _watcher)
    except BaseException:
        uninstall()
        raise


def _apply(patches: list[Patch]) -> None:
    for patch in patches:
        owner = _resolve(patch.target)
        raw = _raw(owner, patch.name)
        # NOTE: a module that copied a replacement at its import (`from sqlite3.dbapi2 import *`)
        # holds the replacement, not the original: patch it as if it held the original.
        raw = _replaced.get(id(_unwrap(raw)), raw)
        original = _unwrap(raw)
        replacement = _replacement(patch, original, raw)
        if isinstance(owner, type) and isinstance(replacement, types.FunctionType):
            replacement = staticmethod(replacement)
        _saved.append((owner, patch.name, raw))
        setattr(owner, patch.name, replacement)
        for members in _lookalike.supports_sets(original):
            if replacement not in members:
                members.add(replacement)
                _joined.append((members, replacement))


def _replacement(patch: Patch, original: Any, raw: Any) -> Any:
    """One replacement per (factory, original), whatever the number of names it is set as."""
    key = (patch.factory, id(original))
    if key not in _made:
        made = patch.factory(original, _current_resolver)
        _made[key] = _lookalike.look_alike(made, original, patch.module, patch.name)
        _replaced[id(_made[key])] = raw
    return _made[key]


class _ImportWatcher:
    """Applies the ``ON_IMPORT`` entries of a module right after the module has run.

    First on ``sys.meta_path``, it finds nothing itself: for a watched module it asks the
    finders after it, and wraps the loader they return in ``_PatchAfterExec``.

    NOTE: not an ``importlib.abc`` subclass (the import system only calls ``find_spec``):
    ``importlib.abc`` imports ``pathlib`` and ``tempfile``, a third of the hooks' start-up in
    every Python process ``dvc stream`` starts.
    """

    def __init__(self) -> None:
        self.waiting: dict[str, list[Patch]] = {}

    def watch(self, patches: list[Patch]) -> None:
        self.waiting.clear()
        for patch in patches:
            self.waiting.setdefault(patch.module, []).append(patch)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.waiting:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchAfterExec(spec.loader, self.waiting[fullname])
                return spec
        return None


class _PatchAfterExec:
    """The real loader, then the module's patches; the module only ever sees the real loader."""

    def __init__(self, loader: Any, patches: list[Patch]):
        self.loader = loader
        self.patches = patches

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        if _saved:  # still installed
            _apply(self.patches)


_watcher = _ImportWatcher()


def uninstall() -> None:
    """Restore every original, in reverse order, exactly as it was."""
    global _resolver
    if _watcher in sys.meta_path:
        sys.meta_path.remove(_watcher)
    while _joined:
        members, replacement = _joined.pop()
        members.discard(replacement)
    while _saved:
        owner, name, raw = _saved.pop()
        if raw is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, raw)
    _made.clear()
    _replaced.clear()
    _resolver = None


def installed() -> bool:
    return bool(_saved)


def original(name: str) -> Any:
    """The original of a patched attribute by dotted name, e.g. ``original("os.stat")``."""
    target, _, attr = name.rpartition(".")
    # NOTE: by identity, not by name: "os.path" is the module named "posixpath" (or "ntpath").
    owner = _resolve(target)
    for saved_owner, saved_name, raw in _saved:
        if saved_name == attr and saved_owner is owner:
            return _unwrap(raw)
    return _unwrap(_raw(owner, attr))
