"""install/uninstall, the re-entry guard, threads and fork."""

from __future__ import annotations

import io
import os
import sys
import threading

import pytest

from dvc_stream.hooks import patches

from .conftest import TRACKED
from .test_patches import read


def _current(patch):
    owner = patches._resolve(patch.target)
    return vars(owner).get(patch.name) if isinstance(owner, type) else getattr(owner, patch.name)


def test_uninstall_restores_every_attribute_exactly(view):
    before = [_current(p) for p in patches.applicable()]
    stat, scandir, open_, exists = os.stat, os.scandir, open, os.path.exists
    patches.install(view.resolver)
    assert patches.installed()
    for patch, old in zip(patches.applicable(), before, strict=True):
        assert _current(patch) is not old, patch
    assert io.open is open is not open_
    assert patches.original("os.stat") is stat
    assert patches.original("builtins.open") is open_
    assert os.path.exists is not exists
    assert patches.original("os.path.exists") is exists
    patches.uninstall()
    assert not patches.installed()
    for patch, old in zip(patches.applicable(), before, strict=True):
        assert _current(patch) is old, patch
    assert os.stat is stat and os.scandir is scandir and open is open_ and io.open is open_
    if sys.version_info >= (3, 13):
        import glob

        assert glob._StringGlobber.lstat is os.lstat
        assert glob._StringGlobber.scandir is os.scandir


def test_install_is_idempotent_and_switches_resolver(view):
    from .conftest import FakeResolver

    before = [_current(p) for p in patches.applicable()]
    other = FakeResolver(view.remote, view.workspace)
    patches.install(view.resolver)
    first = [_current(p) for p in patches.applicable()]
    patches.install(other)
    assert [_current(p) for p in patches.applicable()] == first
    os.chdir(view.workspace)
    assert os.path.getsize("model.pkl") == len(TRACKED["model.pkl"])
    assert other.count("lookup") == 1 and view.resolver.calls == []
    patches.uninstall()
    assert [_current(p) for p in patches.applicable()] == before
    patches.install(view.resolver)
    assert read("data/e.png") == TRACKED["data/e.png"]
    patches.uninstall()
    patches.uninstall()
    assert [_current(p) for p in patches.applicable()] == before
    with pytest.raises(FileNotFoundError):
        os.stat("model.pkl")


def test_original_works_when_not_installed():
    assert patches.original("os.stat") is os.stat
    assert patches.original("io.FileIO") is io.FileIO


def test_resolver_runs_without_recursing(hooked):
    # the fake resolver itself calls os.stat, os.scandir, shutil.copy2 on hooked functions
    assert read("data/sub/deep/d.png") == TRACKED["data/sub/deep/d.png"]
    sorted(os.walk("."))
    assert hooked.resolver.max_depth == 1


def test_use_original_bypasses_hooks(hooked):
    with patches.use_original():
        with pytest.raises(FileNotFoundError):
            os.stat("data/b.bin")
        assert os.listdir("data/sub/../") == os.listdir(hooked.workspace / "data")
    assert os.stat("data/b.bin").st_size == len(TRACKED["data/b.bin"])


def test_threads_reading_the_same_absent_file(hooked):
    results, errors = [], []
    barrier = threading.Barrier(8)

    def read():
        try:
            barrier.wait()
            with open("data/b.bin", "rb") as f:
                results.append(f.read())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [TRACKED["data/b.bin"]] * 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_child_reads_absent_file(hooked):
    stop = threading.Event()

    def busy():  # another thread keeps going through the hooks while we fork
        while not stop.is_set():
            os.path.exists("data/img/2.png")
            os.listdir("data")

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                ok = read("data/img/2.png") == TRACKED["data/img/2.png"]
                ok = ok and "sub" in os.listdir("data")
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        thread.join()


def test_a_copy_of_open_taken_before_install_is_hooked_when_listed(view, monkeypatch):
    # NOTE: IPython binds `io_open = io.open` at its import, before a notebook installs the hooks
    name = "IPython.core.interactiveshell"
    shell = type(sys)(name)
    shell.io_open = io.open
    monkeypatch.setitem(sys.modules, name, shell)
    monkeypatch.chdir(view.workspace)
    patches.install(view.resolver)
    try:
        with shell.io_open("data/sub/deep/f.txt", "rb") as fobj:
            assert fobj.read() == TRACKED["data/sub/deep/f.txt"]
    finally:
        patches.uninstall()
    assert shell.io_open is io.open


def test_modules_not_imported_are_left_alone(view, monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython.core.interactiveshell", raising=False)
    patches.install(view.resolver)
    try:
        assert "IPython.core.interactiveshell" not in sys.modules
    finally:
        patches.uninstall()
