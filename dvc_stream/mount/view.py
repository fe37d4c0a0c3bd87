"""The FUSE operations of one mounted output: the workspace directory first, then the tracked
tree, fetched into the cache on first open."""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import TYPE_CHECKING, Any, TypeVar

from dvc_stream.hooks.resolver import DIR

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from dvc_stream.hooks.resolver import Entry
    from dvc_stream.stream.broker import Broker
    from dvc_stream.workspace.manifest import TrackedOutput

logger = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
NO_OPEN_SUPPORT = 1 << 17  # libfuse 3's FUSE_CAP_NO_OPEN_SUPPORT


class _Callers:
    """Whether the thread behind a request is one of this process's.

    The broker's own checks for workspace files (prefetcher, materialize) must see the real
    directory, not the view. The kernel names the calling thread, which is one of ours if
    /proc/self/task lists it. A lookup in /proc costs as much as the rest of a request, so the
    threads found to be others' are remembered: every reader's request asks. Ours are not (they
    rarely ask): a thread id of ours that ended could, once the kernel's pid range wraps, come
    back as a reader's, which must see the tracked tree. (The other way round does no harm: our
    threads look at the hidden directory through its fd, ``Broker.present``.)
    """

    def __init__(self, fuse: ModuleType) -> None:
        self._context = fuse.fuse_get_context
        self._pid = os.getpid()
        self._others: set[int] = set()

    def ours(self) -> bool:
        tid = self._context()[2]
        if tid in self._others:
            return False
        if tid == self._pid or os.path.exists(f"/proc/self/task/{tid}"):
            return True
        self._others.add(tid)
        return False


def _stat_attrs(st: os.stat_result) -> dict[str, Any]:
    return {
        "st_mode": st.st_mode,
        "st_nlink": st.st_nlink,
        "st_size": st.st_size,
        "st_uid": st.st_uid,
        "st_gid": st.st_gid,
        "st_blocks": st.st_blocks,
        "st_atime": st.st_atime_ns,
        "st_mtime": st.st_mtime_ns,
        "st_ctime": st.st_ctime_ns,
    }


def _entry_attrs(entry: Entry) -> dict[str, Any]:
    if entry.type == DIR:
        mode, nlink = stat.S_IFDIR | 0o555, 2
    else:
        mode, nlink = stat.S_IFREG | (0o555 if entry.isexec else 0o444), 1
    mtime = int(entry.mtime * 1e9)
    return {
        "st_mode": mode,
        "st_nlink": nlink,
        "st_size": entry.size,
        "st_uid": os.getuid(),
        "st_gid": os.getgid(),
        "st_blocks": (entry.size + 511) // 512,
        "st_atime": mtime,
        "st_mtime": mtime,
        "st_ctime": mtime,
    }


def _dirent_mode(entry: os.DirEntry) -> int:
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else stat.S_IFREG


def make_view(fuse: ModuleType, broker: Broker, output: TrackedOutput, dir_fd: int) -> Any:
    """A ``fuse.Operations`` over one directory output; ``dir_fd`` is its workspace directory."""
    # NOTE: the class is built here because its base comes from mfusepy, which is imported only
    # when --mount is used (it loads libfuse at import).
    ops = fuse.Operations
    overrides = fuse.overrides
    FuseOSError = fuse.FuseOSError

    class TreeView(ops):
        use_ns = True

        def __init__(self) -> None:
            self.root = output.path
            self._opened: dict[str, str] = {}  # view path -> cached object, once fetched
            # NOTE: the tracked tree does not change during a run: its attributes are kept, for
            # the files that were not in the workspace at their lookup (nor since: the mount
            # hides the directory from every writer, and this run's placement waits for the
            # unmount).
            self._tracked_attrs: dict[str, dict[str, Any]] = {}
            self._callers = _Callers(fuse)
            self._kernel_opens = False  # set at init if the kernel takes opens on itself

        @overrides(ops)
        def init_with_config(self, conn_info: Any, config_3: Any) -> None:
            self._kernel_opens = _zero_message_opens(fuse, conn_info)

        def _abs(self, path: str) -> str:
            return self.root if path == "/" else os.path.join(self.root, path[1:])

        def _local_stat(self, rel: str) -> os.stat_result | None:
            try:
                return os.lstat(rel, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError):
                return None

        @overrides(ops)
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = self._local_stat(_rel(path))
            if st is not None:
                return _stat_attrs(st)
            if self._callers.ours():
                raise FuseOSError(errno.ENOENT)
            attrs = self._tracked_attrs.get(path)
            if attrs is None:
                entry = _reported(broker.lookup, self._abs(path))
                if entry is None:
                    raise FuseOSError(errno.ENOENT)
                attrs = self._tracked_attrs.setdefault(path, _entry_attrs(entry))
            return attrs

        @overrides(ops)
        def readdir(self, path: str, fh: int) -> list:
            tracked = broker.listdir(self._abs(path)) or {}
            modes = {n: stat.S_IFDIR if k == DIR else stat.S_IFREG for n, k in tracked.items()}
            modes.update(_local_modes(_rel(path), dir_fd))
            return [".", "..", *((name, {"st_mode": m}, 0) for name, m in modes.items())]

        @overrides(ops)
        def open(self, path: str, flags: int) -> int:
            if flags & WRITE_FLAGS:
                raise FuseOSError(errno.EROFS)
            if self._kernel_opens:
                # NOTE: the kernel then opens every file of the view itself: no open, flush or
                # release upcall per file, and the page cache kept across opens (the view's
                # content cannot change). A first read pays the lookup and the read only.
                raise FuseOSError(errno.ENOSYS)
            return self._source(path)

        def _source(self, path: str) -> int:
            """An fd of what ``path`` shows: the workspace file, else the cached object (fetched
            on first use)."""
            cached = self._opened.get(path)
            if cached is not None:
                return os.open(cached, os.O_RDONLY)
            if path not in self._tracked_attrs:
                try:
                    return os.open(_rel(path), os.O_RDONLY, dir_fd=dir_fd)
                except (FileNotFoundError, NotADirectoryError):
                    pass
                if self._callers.ours():
                    raise FuseOSError(errno.ENOENT)
            return os.open(self._cached(path), os.O_RDONLY)

        def _cached(self, path: str) -> str:
            """Fetch ``path`` into the cache (``_source`` found it in neither place)."""
            fetched = _reported(broker.fetch_to_cache, self._abs(path))
            return self._opened.setdefault(path, fetched)

        @overrides(ops)
        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if not self._kernel_opens:
                return os.pread(fh, size, offset)
            fd = self._source(path)
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)

        @overrides(ops)
        def release(self, path: str, fh: int) -> int:
            # NOTE: with kernel opens, only the file whose open answered ENOSYS is released,
            # with no handle of ours (fh 0).
            if not self._kernel_opens:
                os.close(fh)
            return 0

        @overrides(ops)
        def readlink(self, path: str) -> str:
            return os.readlink(_rel(path), dir_fd=dir_fd)

        @overrides(ops)
        def access(self, path: str, amode: int) -> int:
            if amode & os.W_OK:
                raise FuseOSError(errno.EROFS)
            self.getattr(path)
            return 0

        @overrides(ops)
        def statfs(self, path: str) -> dict[str, int]:
            st = os.fstatvfs(dir_fd)
            names = ("bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail")
            return {f"f_{n}": getattr(st, f"f_{n}") for n in (*names, "namemax")}

        # The view is read-only (mounted ``ro``, so the kernel answers most of these itself).
        @overrides(ops)
        def create(self, path: str, mode: int, fi=None) -> int:
            raise FuseOSError(errno.EROFS)

        @overrides(ops)
        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            raise FuseOSError(errno.EROFS)

        @overrides(ops)
        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            raise FuseOSError(errno.EROFS)

        @overrides(ops)
        def mkdir(self, path: str, mode: int) -> int:
            raise FuseOSError(errno.EROFS)

        @overrides(ops)
        def unlink(self, path: str) -> int:
            raise FuseOSError(errno.EROFS)

        @overrides(ops)
        def rename(self, old: str, new: str) -> int:
            raise FuseOSError(errno.EROFS)

    return TreeView()


def _zero_message_opens(fuse: ModuleType, conn_info: Any) -> bool:
    # NOTE: Linux 4.14+ (FUSE_CAP_NO_OPEN_SUPPORT in libfuse 3): an open answered with ENOSYS
    # succeeds, and the kernel sends no more opens. Elsewhere ENOSYS would fail every open.
    return (
        fuse.fuse_version_major == 3
        and conn_info is not None
        and bool(conn_info.capable & NO_OPEN_SUPPORT)
    )


def _reported(call: Callable[[str], T], path: str) -> T:
    # NOTE: the reader only gets an errno (EIO); the reason, with the path and the remote, goes
    # to dvc's log. mfusepy answers with the errno of any OSError.
    try:
        return call(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            logger.error("%s", exc.strerror or exc)
        raise


def _rel(path: str) -> str:
    return path[1:] or "."


def _local_modes(rel: str, dir_fd: int) -> dict[str, int]:
    # NOTE: a fresh fd per listing: concurrent readdirs on one fd would share its offset.
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        with os.scandir(fd) as entries:
            return {entry.name: _dirent_mode(entry) for entry in entries}
    finally:
        os.close(fd)
