"""The broker: answers the hooks' questions about tracked paths and fetches on their behalf.

It owns the repo, the manifest, the fetcher and the statistics. In a ``dvc stream`` run it serves
hooked processes over a socket (``server.py``); in a notebook the hooks call it directly, since it
implements ``hooks.resolver.Resolver``.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import threading
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError, ManifestError
from dvc_stream.hooks.resolver import DIR, FILE, Entry
from dvc_stream.stream.c_readers import CReaders
from dvc_stream.stream.fetcher import BACKGROUND, DEMAND, HINT, Fetcher, ObjectRef
from dvc_stream.stream.object_sizes import SizeIndex
from dvc_stream.stream.policy import budget_from_env, policy_from_env
from dvc_stream.stream.prefetcher import Prefetcher
from dvc_stream.stream.remotes import Remotes, RemoteUnreachable, jobs_for_latency, pull_jobs
from dvc_stream.stream.sources import Sources
from dvc_stream.stream.stats import Stats
from dvc_stream.workspace import cache_objects
from dvc_stream.workspace.cache_objects import IncompleteObject
from dvc_stream.workspace.manifest import Manifest
from dvc_stream.workspace.placement import Placer
from dvc_stream.workspace.reconcile import hand_back, reconcile

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator

    from dvc.repo import Repo

    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput
    from dvc_stream.workspace.summary import Incomplete

logger = logging.getLogger(__name__)

PLACE_ATTEMPTS = 3  # fetches of an object that another process keeps removing or rewriting


class Broker:
    def __init__(
        self,
        repo: Repo,
        remote: str | None = None,
        jobs: int | None = None,
        prefetch: str | None = None,
        prefetch_budget: int | None = None,
        thread_context: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.repo = repo
        self.thread_context = thread_context
        self.remotes = Remotes(repo, remote, jobs)
        self.sources = Sources(repo, self.remotes)
        self._warned: set[str] = set()  # manifest errors already logged
        self.manifest = Manifest.from_repo(
            repo, remote, read_entries=self.sources.entries, resolve_hash=self.sources.resolve_hash
        )
        for reason in self.manifest.skipped:
            logger.warning("%s", reason)
        # NOTE: before the first request: files left there for another version are not served
        self.reconciled = reconcile(repo, self.manifest)
        self.stats = Stats()
        self.jobs = jobs or self._default_jobs()
        self.fetcher = Fetcher(
            self.jobs,
            tmp_dir=os.path.join(repo.tmp_dir, "stream-downloads"),
            on_fetched=self._count_fetch,
            on_failed=self._fetch_failed,
            thread_context=thread_context,
        )
        self.sizes = SizeIndex(jobs=self.jobs)
        self.placer = Placer(repo)
        self.prefetcher = Prefetcher(
            self, policy_from_env(prefetch), budget_from_env(prefetch_budget)
        )
        self.candidates = self.manifest.candidate_prefixes()
        self._exact = frozenset(self.candidates[0])
        self._prefixes = tuple(self.candidates[1])
        self._fetched: set[str] = set()  # oids downloaded by this run
        self._placement_lock = threading.Lock()
        self._deferred: dict[str, TrackedFile] | None = None  # see placement_deferred()
        self._shadowed: dict[str, int] = {}  # see shadow()
        self._closed = False
        self.incomplete: list[Incomplete] = []  # directories left partial; set by close()
        self.c_readers = CReaders()

    def _default_jobs(self) -> int:
        """As many downloads at once as the remote's round trip calls for.

        A remote that is not set, or cannot be reached, fails only the files it must send, at
        once: those already in the cache are served, as ``dvc checkout`` places them.
        """
        from dvc.config import NoRemoteError

        outputs = [o for o in self.manifest.outputs.values() if self.sources.reads_remote(o)]
        if not outputs:
            return pull_jobs()
        first = outputs[0]
        try:
            rtt = self.remotes.round_trip(first.remote, first.out.hash_name, first.oid)
        except NoRemoteError:
            logger.debug("no remote is set: only the files in the cache can be read")
            return pull_jobs()
        except RemoteUnreachable:
            return pull_jobs()  # NOTE: said as it was found (Remotes.gave_up)
        return pull_jobs() if rtt is None else jobs_for_latency(rtt)

    # -- Resolver -------------------------------------------------------------------------

    def is_candidate(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    def lookup(self, path: str) -> Entry | None:
        kind = self._kind(path)
        if kind is None:
            return None
        what, output = kind
        mtime = output.mtime if output is not None else self._ancestor_mtime()
        if what == DIR:
            return Entry(DIR, 4096, mtime)
        tracked = self.manifest.file(path)
        assert tracked is not None
        return Entry(FILE, self._size(tracked), mtime, tracked.isexec)

    def kind(self, path: str) -> str | None:
        found = self._kind(path)
        return None if found is None else found[0]

    def listdir(self, path: str) -> dict[str, str] | None:
        names = self._guard(self.manifest.listdir, path)
        if names is not None:
            found = self.manifest.owner(path)
            if found is not None and found[0].isdir:
                self.prefetcher.listed(found[0], found[1])
        return names

    def materialize(self, path: str) -> str:
        tracked = self._tracked(path)
        self.c_readers.read(tracked.output)
        if self.present(path):
            return path
        self._demand(tracked)
        return path

    def fetch_to_cache(self, path: str) -> str:
        """Fetch the tracked file ``path`` into the cache; return the cached object's path.

        The workspace copy follows at once, or when ``placement_deferred()`` ends (``--mount``:
        the workspace is shadowed while mounted).
        """
        return self._demand(self._tracked(path)).cache_path

    @contextmanager
    def placement_deferred(self) -> Iterator[None]:
        """Record the files fetched meanwhile instead of placing them; place them all on exit."""
        with self._placement_lock:
            self._deferred = {}
        try:
            yield
        finally:
            with self._placement_lock:
                deferred, self._deferred = self._deferred, None
            for tracked in (deferred or {}).values():
                self.place_fetched(tracked)

    def shadow(self, root: str, dir_fd: int | None) -> None:
        """While a view is mounted on ``root``, tell what is there from ``dir_fd``, the
        directory it hides (None: the view is gone)."""
        # NOTE: replaced, never changed in place: present() reads it on other threads.
        shadowed = {k: v for k, v in self._shadowed.items() if k != root}
        if dir_fd is not None:
            shadowed[root] = dir_fd
        self._shadowed = shadowed

    def present(self, path: str) -> bool:
        """Whether ``path`` is in the workspace; under a mounted view, in the directory it hides.

        NOTE: not through the view: the kernel keeps the view's entries, including the tracked
        files it shows before they are fetched.
        """
        for root, dir_fd in self._shadowed.items():
            if path.startswith(root + os.sep):
                try:
                    os.lstat(path[len(root) + 1 :], dir_fd=dir_fd)
                except (FileNotFoundError, NotADirectoryError):
                    return False
                return True
        return os.path.lexists(path)

    def hints_read_order(self) -> bool:
        return self.prefetcher.follows_samplers

    def prefetch(self, paths: list[str], sender: Hashable = None) -> None:
        """Hint these files, after those ``sender`` (a client connection) hinted before."""
        files = [f for f in map(self.manifest.file, paths) if f is not None]
        self.prefetcher.hint(files, sender)

    def looked_at_by_c_readers(self, modules: list[str], path: str) -> None:
        """A process that had imported ``modules`` (C readers) listed or stat'ed ``path``."""
        found = self.manifest.owner(path)
        if found is not None:
            self.c_readers.looked_at(modules, found[0])

    def c_readers_hint(self) -> str | None:
        """After close(): the suggestion of ``--mount`` if a program seems to have read tracked
        files from C (see ``c_readers``)."""
        return self.c_readers.hint(self._missing_at_start)

    def _missing_at_start(self, output: TrackedOutput) -> bool:
        """Whether a file of ``output`` was not in the workspace when the run started: it still
        is not, or this run downloaded it."""
        if not output.isdir:
            return output.oid in self._fetched or not os.path.lexists(output.path)
        for relpath, (oid, _isexec) in output.tree.files.items():
            if oid in self._fetched or not os.path.lexists(os.path.join(output.path, relpath)):
                return True
        return False

    # -- internals -------------------------------------------------------------------------

    def ref(self, tracked: TrackedFile) -> ObjectRef:
        output = tracked.output
        out = output.out
        try:
            source = self.sources.of(output)
        except ManifestError as exc:
            self._warn_once(exc)
            raise OSError(errno.EIO, f"dvc stream: {exc}", tracked.path) from None
        return ObjectRef(
            oid=tracked.oid,
            hash_name=out.hash_name,
            cache=output.cache,
            open_remote=functools.partial(source.store, tracked),
            remote_name=source.name,
            display=_relative(tracked.path, self.manifest.root),
        )

    def place_fetched(self, tracked: TrackedFile) -> None:
        """Put a prefetched object in the workspace; called on a fetch worker."""
        try:
            self._place(tracked)
        except OSError as exc:
            logger.debug("could not place prefetched '%s': %s", tracked.path, exc)

    def _place(self, tracked: TrackedFile) -> None:
        with self._placement_lock:
            if self._deferred is not None:
                self._deferred[tracked.path] = tracked
                return
        self.placer.place(tracked, self.sources.state_hash(tracked))
        self.sources.placed(tracked)

    def _tracked(self, path: str) -> TrackedFile:
        tracked = self._guard(self.manifest.file, path)
        if tracked is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return tracked

    def _demand(self, tracked: TrackedFile) -> ObjectRef:
        ref = self.ref(tracked)
        start = time.perf_counter()
        cached_size = cache_objects.whole_size(ref.cache, ref.oid)
        # NOTE: under a view (placement deferred), a file that was in the cache before this run
        # is no evidence for the readahead: the fill past it could only record placements for
        # later, and that thread's work slowed the view's first reads of cached files by a third.
        evidence = cached_size is None or self._deferred is None or ref.oid in self._fetched
        try:
            self._fetch_and_place(ref, tracked, evidence)
        except FetchError as exc:
            self.stats.add(failed_files=1)
            raise OSError(errno.EIO, str(exc), tracked.path) from None
        finally:
            self.stats.add(wait_seconds=time.perf_counter() - start)
        # NOTE: an object that a prefetch brought in before it was placed counts as prefetched.
        if cached_size is not None and ref.oid not in self._fetched:
            self.stats.add(cached_files=1, cached_bytes=cached_size)
        return ref

    def _fetch_and_place(self, ref: ObjectRef, tracked: TrackedFile, evidence: bool) -> None:
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            future = self.fetcher.submit(ref, DEMAND)
            if attempt == 1 and evidence:
                # NOTE: told before the wait, so that a readahead runs alongside this fetch
                self.prefetcher.touched(tracked)
            future.result()
            try:
                self._place(tracked)
                return
            except IncompleteObject as exc:
                # NOTE: another process removed or rewrote the object since it was checked.
                logger.debug("'%s' changed in the cache (%d): %s", ref.display, attempt, exc)
                if attempt == PLACE_ATTEMPTS:
                    raise FetchError(ref.display, ref.remote_name, str(exc)) from None

    def _count_fetch(self, ref: ObjectRef, priority: int, size: int) -> None:
        self.remotes.answered(ref.remote)
        self._fetched.add(ref.oid)
        self.stats.fetched()
        if priority == DEMAND:
            self.stats.add(demand_files=1, demand_bytes=size)
        elif priority in (HINT, BACKGROUND):
            self.stats.add(prefetched_files=1, prefetched_bytes=size)
        self.sizes.remember(ref.oid, size)

    def _fetch_failed(self, ref: ObjectRef, error: BaseException) -> None:
        try:
            store = ref.remote
        except FetchError:
            return  # it could not even be opened: nothing was asked of it
        self.remotes.gave_up(store, error)

    def _kind(self, path: str) -> tuple[str, TrackedOutput | None] | None:
        return self._guard(self.manifest.kind, path)

    def _guard(self, func, path: str):
        try:
            return func(path)
        except ManifestError as exc:
            self._warn_once(exc)
            raise OSError(errno.EIO, f"dvc stream: {exc}", path) from None

    def _warn_once(self, exc: ManifestError) -> None:
        # NOTE: os.walk() and glob() swallow the program's OSError: say it here too, once.
        message = str(exc)
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)

    def _size(self, tracked: TrackedFile) -> int:
        if tracked.size is not None:
            return tracked.size
        known = self.sizes.known(tracked.oid)
        if known is not None:
            return known
        siblings = list(tracked.output.files_in(tracked.reldir)) if tracked.output.isdir else []
        try:
            return self.sizes.size(tracked, siblings, self.ref)
        except FetchError as exc:
            raise OSError(errno.EIO, str(exc), tracked.path) from None

    def _ancestor_mtime(self) -> float:
        return max((o.mtime for o in self.manifest.outputs.values()), default=0.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.prefetcher.close()
        self.fetcher.close()
        self.placer.flush()
        hand_back(self.repo, self.placer.placed_outputs.values())
        from dvc_stream.workspace import summary

        root = os.path.abspath(self.repo.root_dir)
        # NOTE: with the outputs this run's start entered in the record (a version switch
        # left them incomplete), even if it placed nothing into them.
        outputs = dict(self.placer.placed_outputs)
        for rel in self.reconciled.claimed:
            path = os.path.join(root, *rel.split("/"))
            if path in self.manifest.outputs:
                outputs.setdefault(path, self.manifest.outputs[path])
        self.incomplete = summary.incomplete(root, outputs.values())


def _relative(path: str, root: str) -> str:
    # NOTE: tracked paths are normalized and under the root: no need for os.path.relpath.
    if path.startswith(root + os.sep):
        return path[len(root) + 1 :]
    return os.path.relpath(path, root)
