"""The expected state of a streamed clone, for the stateful test: what each branch tracks, which
files the cache placed in the workspace and which the user wrote, and what DVC must do next."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

RAW = "data/raw"
LABELS = "data/labels.csv"
COUNT = "data/count.txt"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree_oid(files: dict[str, bytes]) -> str:
    """The ``.dir`` hash DVC gives a directory holding ``files`` (relpath -> bytes)."""
    from dvc_data.hashfile.tree import Tree

    tree = Tree.from_list([{"md5": md5(data), "relpath": rel} for rel, data in files.items()])
    tree.digest()
    return tree.hash_info.value


@dataclass(frozen=True)
class Lock:
    """The ``count`` stage in ``dvc.lock``: the ``data/raw`` tree it ran on, what it wrote."""

    tree: dict[str, bytes]
    count: int


@dataclass
class Version:
    """What one branch tracks: ``data/raw.dvc``, ``data/labels.csv.dvc``, ``dvc.lock``."""

    raw: dict[str, bytes]
    labels: bytes
    lock: Lock


@dataclass
class Model:
    """The clone as it must be. ``placed``: workspace files holding bytes the cache has (placed
    by a run or a pull, for any version); ``user``: files the user wrote (bytes in no cache);
    ``cache``: the md5s in the local cache; ``claimed``: ``data/raw`` is in the record of
    partial outputs (a run placed files into it and no run found it whole since); ``seen``:
    every path that was ever in the workspace (DVC's state database has an entry for it)."""

    branch: str
    versions: dict[str, Version]
    placed: dict[str, bytes] = field(default_factory=dict)
    user: dict[str, bytes] = field(default_factory=dict)
    cache: set[str] = field(default_factory=set)
    claimed: bool = False
    seen: set[str] = field(default_factory=set)

    @property
    def version(self) -> Version:
        return self.versions[self.branch]

    def tracked(self, path: str) -> bytes | None:
        if path == LABELS:
            return self.version.labels
        return self.version.raw.get(path.removeprefix(f"{RAW}/"))

    def expected_read(self, path: str) -> bytes | None:
        """What a streamed read returns: the user's bytes, else the checked-out version's;
        ``None`` for "no such file"."""
        return self.user[path] if path in self.user else self.tracked(path)

    def user_raw(self) -> dict[str, bytes]:
        prefix = f"{RAW}/"
        return {p.removeprefix(prefix): d for p, d in self.user.items() if p.startswith(prefix)}

    def merged_raw(self) -> dict[str, bytes]:
        """The tracked tree plus the user's new and edited files: what ``dvc add`` records."""
        return {**self.version.raw, **self.user_raw()}

    def add_outcomes(self) -> dict[str, set[bytes | None]]:
        """What ``dvc add data/raw`` may record for each relpath (None: no entry): the merged
        tree, except that a placed file of another version (a switch, no run since) may be
        recorded as it is, as DVC records any file present."""
        outcomes: dict[str, set[bytes | None]] = {
            rel: {data} for rel, data in self.merged_raw().items()
        }
        for path, data in self.placed.items():
            rel = path.removeprefix(f"{RAW}/")
            if rel != path and self.tracked(path) != data:
                outcomes.setdefault(rel, {None}).add(data)
        return outcomes

    def dvc_sees_raw(self) -> bool:
        """``data/raw`` is in the record (DVC's commands must see the partial workspace), or
        it is as DVC alone would leave it, whole and of the checked-out version. The rest (a
        pulled copy of another version after a switch, say) is DVC's own case, outside the
        record: only ``dvc checkout`` or the next run brings it to the checked-out version."""
        return self.claimed or not (self.raw_stale() or self.raw_partial())

    def raw_present(self) -> bool:
        return any(p.startswith(f"{RAW}/") for p in (*self.placed, *self.user))

    def raw_partial(self) -> bool:
        """Some file the checked-out ``data/raw`` tracks is not in the workspace."""
        present = {*self.placed, *self.user}
        return any(f"{RAW}/{rel}" not in present for rel in self.version.raw)

    def raw_stale(self) -> bool:
        """A placed file of ``data/raw`` holds another version's bytes (no run since a switch)."""
        return any(
            p.startswith(f"{RAW}/") and self.tracked(p) != data for p, data in self.placed.items()
        )

    def switch(self) -> None:
        self.branch = "v2" if self.branch == "main" else "main"

    def reconcile(self) -> None:
        """A run's start-up, by DVC's overwrite rule: a placed file of another version is
        replaced from the cache (removed if the cache or the version lacks it); the user's stay.
        A whole ``data/raw`` leaves the record; one that lost files is in it, and so is one that
        lacks a file that was never here (new in this version: not fetched, not deleted)."""
        removed = False
        for path, data in list(self.placed.items()):
            tracked = self.tracked(path)
            if tracked == data:
                continue
            if tracked is not None and md5(tracked) in self.cache:
                self.placed[path] = tracked
            else:
                del self.placed[path]
                removed = removed or path.startswith(f"{RAW}/")
        never_here = self.raw_present() and any(
            f"{RAW}/{rel}" not in self.seen for rel in self.version.raw
        )
        self.claimed = self.raw_partial() and (self.claimed or removed or never_here)

    def read(self, path: str) -> None:
        """A streamed read places a tracked file that is absent; a present one it only reads
        (the run places nothing, so it claims nothing: after a ``dvc pull`` the output stays
        DVC's own)."""
        tracked = self.tracked(path)
        if path not in self.user and tracked is not None and path not in self.placed:
            self.placed[path] = tracked
            self.seen.add(path)
            self.cache.add(md5(tracked))
            self.claimed = self.claimed or path.startswith(f"{RAW}/")

    def write(self, path: str, data: bytes) -> None:
        self.placed.pop(path, None)
        self.user[path] = data
        self.seen.add(path)

    def commit_raw(self, raw: dict[str, bytes]) -> None:
        """``data/raw.dvc`` now records ``raw``: the user's files in it are in the cache."""
        self.version.raw = dict(raw)
        for rel in raw:
            path = f"{RAW}/{rel}"
            if path in self.user:
                self.placed[path] = self.user.pop(path)
                self.cache.add(md5(self.placed[path]))

    def commit_labels(self) -> None:
        self.version.labels = self.user.pop(LABELS)
        self.placed[LABELS] = self.version.labels
        self.cache.add(md5(self.version.labels))

    def record_run(self, tree: dict[str, bytes], count: int) -> None:
        self.version.lock = replace(self.version.lock, tree=dict(tree), count=count)
        self.cache.add(md5(f"{count}\n".encode()))

    def fetched(self) -> None:
        """``dvc pull`` fetches before it checks out, even when the checkout refuses."""
        self.cache.update(md5(data) for data in self.expected_tree().values())

    def pulled(self) -> None:
        self.fetched()
        self.placed = {f"{RAW}/{rel}": data for rel, data in self.version.raw.items()}
        self.placed[LABELS] = self.version.labels
        self.seen.update(self.placed)
        self.user = {}
        self.claimed = False

    def expected_tree(self) -> dict[str, bytes]:
        """Every file under ``data/`` after a successful ``dvc pull``."""
        tree = {f"{RAW}/{rel}": data for rel, data in self.version.raw.items()}
        tree[LABELS] = self.version.labels
        tree[COUNT] = f"{self.version.lock.count}\n".encode()
        return tree
