"""Real git + DVC repositories in temp dirs, with an S3 remote on a moto server."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import random
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_stream.testing.cli import dvc_env, make_config_dir, run_dvc, run_git

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator, Sequence

    from dvc_stream.testing.moto import MotoServer

logger = logging.getLogger(__name__)

REMOTE_NAME = "storage"
_clone_counter = itertools.count()


@dataclass
class Dataset:
    """What a tracked directory must contain after a pull: relpath -> bytes."""

    path: str
    files: dict[str, bytes] = field(repr=False)

    @property
    def nfiles(self) -> int:
        return len(self.files)

    @property
    def total_size(self) -> int:
        return sum(map(len, self.files.values()))


def file_content(seed: int, relpath: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes: the same (seed, relpath, size) always gives the same."""
    digest = hashlib.sha256(f"{seed}:{relpath}".encode()).digest()
    return random.Random(digest).randbytes(size)


def dataset_layout(nfiles: int, depth: int, fanout: int) -> list[str]:
    """Relpaths of ``nfiles`` files spread round-robin over ``fanout**depth`` nested dirs."""
    ndirs = fanout**depth if depth > 0 else 1
    paths = []
    for i in range(nfiles):
        slot = i % ndirs
        parts = []
        for _ in range(depth):
            parts.append(f"d{slot % fanout}")
            slot //= fanout
        paths.append("/".join([*parts, f"f{i:05d}.bin"]))
    return paths


def _size_of(i: int, size: int, sizes: Sequence[int] | Callable[[int], int] | None) -> int:
    if sizes is None:
        return size
    return sizes(i) if callable(sizes) else sizes[i]


def _rmtree(path: Path) -> None:
    def make_writable(func, target, _exc):  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(target), stat.S_IRWXU)
        os.chmod(target, stat.S_IRWXU)
        func(target)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable)


class DvcRepo:
    """A git + DVC repo whose default remote ``storage`` is an S3 bucket on a moto server.

    ``git_root`` is set when the DVC project is a subdirectory of its git repo (a monorepo);
    ``cloud_versioning`` is ``"version_aware"`` or ``"worktree"`` for a cloud-versioned remote.
    """

    remote_name = REMOTE_NAME

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        remote_url: str,
        endpoint_url: str,
        site_cache_dir: Path,
        git_root: Path | None = None,
        cloud_versioning: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.env = env
        self.remote_url = remote_url
        self.endpoint_url = endpoint_url
        self.site_cache_dir = Path(site_cache_dir)
        self.git_root = Path(git_root) if git_root is not None else self.root
        self.cloud_versioning = cloud_versioning

    def __repr__(self) -> str:
        return f"DvcRepo({str(self.root)!r}, remote={self.remote_url!r})"

    def dvc(
        self, *args: str | os.PathLike[str], check: bool = True, cwd: Path | None = None, **kw
    ) -> subprocess.CompletedProcess[str]:
        return run_dvc(*args, cwd=cwd or self.root, env=kw.pop("env", self.env), check=check, **kw)

    def git(
        self, *args: str | os.PathLike[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_git(*args, cwd=self.root, env=self.env, check=check)

    def make_dataset(
        self,
        path: str = "data/images",
        nfiles: int = 20,
        size: int = 1024,
        depth: int = 1,
        fanout: int = 4,
        seed: int = 0,
        sizes: Sequence[int] | Callable[[int], int] | None = None,
        push: bool = True,
        commit: bool = True,
    ) -> Dataset:
        """Write a deterministic nested directory, ``dvc add`` it, commit and push it."""
        files = {}
        for i, relpath in enumerate(dataset_layout(nfiles, depth, fanout)):
            files[relpath] = file_content(seed, relpath, _size_of(i, size, sizes))
        for relpath, data in files.items():
            target = self.root / path / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self._track(path, push=push, commit=commit)
        return Dataset(path=path, files=files)

    def add_file(self, path: str, data: bytes, push: bool = True, commit: bool = True) -> Path:
        """Track one file by its own ``.dvc`` file."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self._track(path, push=push, commit=commit)
        return target

    def _track(self, path: str, *, push: bool, commit: bool) -> None:
        self.dvc("add", "-q", path)
        parent = Path(path).parent
        self.git("add", f"{path}.dvc", parent / ".gitignore")
        if commit:
            self.commit(f"track {path}")
        if push:
            self.push()

    def push(self) -> None:
        """``dvc push``; on a cloud-versioned remote, also commit the version ids it records."""
        self.dvc("push", "-q")
        if self.cloud_versioning and self.git("status", "--porcelain", "-uno", ".").stdout:
            self.git("add", "-u", ".")
            self.commit("record the cloud versions of the pushed files")

    def import_repo(self, url: str | os.PathLike[str], path: str, out: str, *args: str) -> None:
        """``dvc import <url> <path> -o <out>``, committed."""
        self._import("import", os.fspath(url), path, "-o", out, *args, out=out)

    def import_url(self, url: str, out: str, *args: str) -> None:
        """``dvc import-url <url> <out>`` with this moto server as the endpoint, committed."""
        config = ("--fs-config", f"endpointurl={self.endpoint_url}")
        self._import("import-url", url, out, *config, *args, out=out)

    def _import(self, *args: str, out: str) -> None:
        (self.root / out).parent.mkdir(parents=True, exist_ok=True)
        self.dvc(*args)
        self.git("add", f"{out}.dvc", Path(out).parent / ".gitignore")
        self.commit(f"import {out}")

    def commit(self, msg: str) -> None:
        self.git("commit", "-q", "--no-verify", "-m", msg)

    def outputs(self) -> list[str]:
        """Workspace paths (relative to root) of every output in ``.dvc`` files and dvc.lock."""
        import yaml

        outs = []
        for dvcfile in self._dvcfiles():
            data = yaml.safe_load(dvcfile.read_text()) or {}
            base = dvcfile.parent.relative_to(self.root)
            outs += [(base / out["path"]).as_posix() for out in data.get("outs", [])]
        for lock in self.root.rglob("dvc.lock"):
            data = yaml.safe_load(lock.read_text()) or {}
            base = lock.parent.relative_to(self.root)
            for stage in data.get("stages", {}).values():
                outs += [(base / out["path"]).as_posix() for out in stage.get("outs", [])]
        return outs

    def _dvcfiles(self) -> Iterator[Path]:
        for dvcfile in self.root.rglob("*.dvc"):
            if ".dvc" not in dvcfile.relative_to(self.root).parts[:-1] and dvcfile.is_file():
                yield dvcfile

    def wipe(self) -> None:
        """Back to a fresh-clone state: no tracked data in the workspace, no caches."""
        for out in self.outputs():
            _rmtree(self.root / out)
        _rmtree(self.root / ".dvc" / "cache")
        _rmtree(self.site_cache_dir)

    def clone(self, dest: Path | None = None) -> DvcRepo:
        """A real ``git clone`` with the committed remote config and its own site cache; for a
        project in a subdirectory, the whole git repo is cloned and the project is returned."""
        source = self.git_root
        if dest is None:
            dest = source.parent / f"{source.name}-clone-{next(_clone_counter)}"
        dest = Path(dest)
        run_git("clone", "-q", source, dest, cwd=dest.parent, env=self.env)
        subdir = self.root.relative_to(source)
        root = dest / subdir
        site_cache = _site_cache_for(dest, subdir)
        env = {**self.env, "DVC_SITE_CACHE_DIR": str(site_cache)}
        endpoint = _committed_endpoint(root) or self.endpoint_url
        return DvcRepo(
            root, env, self.remote_url, endpoint, site_cache, dest, self.cloud_versioning
        )

    def bare_clone(self, dest: Path | None = None) -> str:
        """A bare clone of the git repo, as a ``file://`` URL that ``dvc import`` takes."""
        source = self.git_root
        dest = Path(dest or source.parent / f"{source.name}-{next(_clone_counter)}.git")
        run_git("clone", "-q", "--bare", source, dest, cwd=dest.parent, env=self.env)
        return dest.as_uri()

    def set_endpoint(self, endpoint_url: str) -> None:
        """Route the remote through another endpoint (e.g. a proxy) in ``.dvc/config.local``."""
        self.dvc("remote", "modify", "--local", self.remote_name, "endpointurl", endpoint_url)
        self.endpoint_url = endpoint_url

    @contextlib.contextmanager
    def environ(self) -> Iterator[None]:
        """Apply ``env`` to ``os.environ`` (for in-process DVC calls), restored on exit."""
        from dvc_stream.stream.run import environment

        with environment(self.env):
            yield

    def tracked_files(self, path: str) -> dict[str, bytes]:
        """relpath -> bytes of every file under ``path`` in the workspace now."""
        base = self.root / path
        return {
            p.relative_to(base).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*"))
            if p.is_file()
        }


def _site_cache_for(root: Path, subdir: Path | None = None) -> Path:
    """Outside the git work tree, one per DVC project."""
    suffix = "-".join(Path(subdir).parts) if subdir is not None else ""
    return root.parent / "-".join(p for p in ("site-cache", root.name, suffix) if p)


def _committed_endpoint(root: Path) -> str | None:
    from configobj import ConfigObj

    conf = ConfigObj(str(root / ".dvc" / "config"))
    return conf.get(f'remote "{REMOTE_NAME}"', {}).get("endpointurl")


def _write_remote_config(root: Path, remote_url: str, endpoint_url: str) -> None:
    from configobj import ConfigObj

    conf = ConfigObj(str(root / ".dvc" / "config"))
    conf.setdefault("core", {})["remote"] = REMOTE_NAME
    conf[f'remote "{REMOTE_NAME}"'] = {"url": remote_url, "endpointurl": endpoint_url}
    conf.write()


def make_repo(
    root: Path,
    moto: MotoServer,
    bucket: str | None = None,
    *,
    subdir: str | None = None,
    cloud_versioning: str | None = None,
) -> DvcRepo:
    """git init + dvc init + default remote ``storage`` at ``s3://<bucket>/store``; committed.

    With ``subdir``, ``root`` is the git repo (made if it is not one yet) and the DVC project is
    ``root/subdir`` (``dvc init --subdir``). With ``cloud_versioning`` (``"version_aware"`` or
    ``"worktree"``), the remote is set so, on a new bucket with versioning enabled.
    """
    git_root = Path(root)
    root = git_root / subdir if subdir else git_root
    root.mkdir(parents=True, exist_ok=True)
    if bucket is None:
        bucket = moto.new_bucket(versioned=cloud_versioning is not None)
    site_cache = _site_cache_for(git_root, Path(subdir) if subdir else None)
    config_dir = make_config_dir(git_root.parent)
    env = dvc_env(config_dir=config_dir, DVC_SITE_CACHE_DIR=str(site_cache))
    remote_url = f"s3://{bucket}/store"
    repo = DvcRepo(
        root, env, remote_url, moto.endpoint_url, site_cache, git_root, cloud_versioning
    )
    if not (git_root / ".git").exists():
        run_git("init", "-q", cwd=git_root, env=env)
    repo.dvc("init", "-q", *(["--subdir"] if subdir else []))
    _write_remote_config(root, repo.remote_url, repo.endpoint_url)
    if cloud_versioning:
        repo.dvc("remote", "modify", REMOTE_NAME, cloud_versioning, "true")
    repo.git("add", ".dvc", ".dvcignore")
    repo.commit("init dvc")
    logger.debug("made %r", repo)
    return repo
