"""Where no tracked path is involved, nothing tells the hooks' functions from the originals."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import io
import os
import pickle
import shutil
import sys

import pytest

from dvc_stream.hooks import _lookalike, patches

OS_FUNCTIONS = ("open", "stat", "lstat", "access", "listdir", "scandir", "chdir")


def _supports() -> dict[str, set]:
    return {name: set(getattr(os, name)) for name in _lookalike.SUPPORTS}


def _current(patch: patches.Patch):
    return getattr(patches._resolve(patch.target), patch.name)


@pytest.fixture
def replaced(view):
    """[(entry, original, replacement)] for every applicable entry that replaces a function."""
    originals = [(patch, _current(patch)) for patch in patches.applicable()]
    patches.install(view.resolver)
    yield [
        (patch, original, _current(patch))
        for patch, original in originals
        if callable(original) and not isinstance(original, type)
    ]
    patches.uninstall()


def test_patched_functions_keep_their_place_in_the_supports_sets(view):
    before = _supports()
    originals = {name: getattr(os, name) for name in OS_FUNCTIONS}
    patches.install(view.resolver)
    try:
        for name, original in originals.items():
            for members in _lookalike.SUPPORTS:
                replacement = getattr(os, name)
                assert replacement is not original
                expected = original in getattr(os, members)
                assert (replacement in getattr(os, members)) is expected, (name, members)
        assert os.stat in os.supports_follow_symlinks and os.open in os.supports_dir_fd
    finally:
        patches.uninstall()
    assert _supports() == before


def test_copystat_and_copy2_of_a_link_without_following_it(hooked, tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("t")
    link = tmp_path / "link"
    link.symlink_to(target)
    shutil.copy2(link, tmp_path / "copy", follow_symlinks=False)
    assert os.readlink(tmp_path / "copy") == str(target)
    (tmp_path / "other").symlink_to(target)
    shutil.copystat(link, tmp_path / "other", follow_symlinks=False)
    assert os.path.islink(tmp_path / "other")


def _fresh_shutil():
    spec = importlib.util.find_spec("shutil")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shutil_imported_under_the_hooks_keeps_its_symlink_safe_rmtree(hooked, tmp_path):
    fresh = _fresh_shutil()
    assert fresh.rmtree.avoids_symlink_attacks == shutil.rmtree.avoids_symlink_attacks
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "kept").mkdir()
    (tmp_path / "tree" / "link").symlink_to(tmp_path / "kept")
    fresh.rmtree(tmp_path / "tree")
    assert not os.path.lexists(tmp_path / "tree") and os.path.isdir(tmp_path / "kept")


def _drain(fobj) -> bytes:
    with fobj:
        return fobj.read()


def _argument_forms(base: str, fd: int) -> dict[str, object]:
    """Calls of each patched os function in its fd, dir_fd and follow_symlinks forms."""
    return {
        "stat(fd)": lambda: os.stat(fd).st_ino,
        "stat(dir_fd)": lambda: os.stat("file", dir_fd=fd).st_ino,
        "stat(nofollow)": lambda: os.stat(f"{base}/link", follow_symlinks=False).st_mode,
        "stat(path=)": lambda: os.stat(path=f"{base}/file").st_ino,
        "lstat(dir_fd)": lambda: os.lstat("link", dir_fd=fd).st_mode,
        "access(all)": lambda: os.access(
            "link", os.R_OK, dir_fd=fd, effective_ids=True, follow_symlinks=False
        ),
        "listdir(fd)": lambda: sorted(os.listdir(fd)),
        "scandir(fd)": lambda: sorted(entry.name for entry in os.scandir(fd)),
        "open(dir_fd)": lambda: _drain(io.FileIO(os.open("file", os.O_RDONLY, dir_fd=fd))),
        "io.open(fd)": lambda: _drain(io.open(os.open(f"{base}/file", os.O_RDONLY), "rb")),  # noqa: UP020
        "open(file=, mode=)": lambda: _drain(open(file=f"{base}/file", mode="rb")),
        "FileIO(fd)": lambda: _drain(io.FileIO(os.open(f"{base}/file", os.O_RDONLY))),
        "chdir(fd)": lambda: (os.chdir(fd), os.getcwd())[1],
    }


def test_fd_dir_fd_and_follow_symlinks_forms_give_what_the_originals_give(view, tmp_path):
    (tmp_path / "file").write_bytes(b"contents")
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        expected = {name: call() for name, call in _argument_forms(str(tmp_path), fd).items()}
        patches.install(view.resolver)
        try:
            actual = {name: call() for name, call in _argument_forms(str(tmp_path), fd).items()}
        finally:
            patches.uninstall()
    finally:
        os.close(fd)
    assert actual == expected
    assert view.resolver.calls == []


BAD_CALLS = {
    "open()": lambda: open(),  # noqa: SIM115
    "open(mode=int)": lambda: open(__file__, 1),  # noqa: SIM115
    "open(bad keyword)": lambda: open(__file__, nope=1),  # noqa: SIM115
    "os.stat()": lambda: os.stat(),
    "os.stat(bad type)": lambda: os.stat(1.5),
    "os.lstat(follow_symlinks)": lambda: os.lstat(__file__, follow_symlinks=False),
    "os.open(flags=str)": lambda: os.open(__file__, "r"),
    "os.listdir(2 args)": lambda: os.listdir(".", "."),
    "os.access()": lambda: os.access(__file__),
    "os.path.exists()": lambda: os.path.exists(),
    "io.FileIO(mode=int)": lambda: io.FileIO(__file__, 1),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS)
def test_invalid_calls_fail_as_the_originals_do(view, call):
    with pytest.raises(Exception) as expected:
        call()
    patches.install(view.resolver)
    try:
        with pytest.raises(Exception) as actual:
            call()
    finally:
        patches.uninstall()
    assert (actual.type, str(actual.value)) == (expected.type, str(expected.value))


def test_replacements_carry_the_originals_names_and_signatures(replaced):
    assert len(replaced) >= 13
    for patch, original, replacement in replaced:
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            assert getattr(replacement, attr) == getattr(original, attr), (patch, attr)
        assert inspect.unwrap(replacement) is original, patch
        assert _signature(replacement) == _signature(original), patch


def _signature(function) -> str:
    try:
        return str(inspect.signature(function))
    except ValueError:  # NOTE: some builtins have none (sqlite3.connect before 3.13)
        return "no signature"


def test_io_fileio_keeps_its_names(hooked):
    original = patches.original("io.FileIO")
    assert io.FileIO is not original
    assert (io.FileIO.__module__, io.FileIO.__qualname__) == ("_io", "FileIO")
    assert repr(io.FileIO) == repr(original)


def test_replacements_held_by_a_class_are_not_bound_to_its_instances(hooked):
    class Holder:
        open = io.open
        stat = os.stat
        exists = os.path.exists

    holder = Holder()
    with holder.open(__file__, "rb") as fobj:
        assert fobj.read(4)
    assert holder.stat(__file__).st_size == os.path.getsize(__file__)
    assert Holder.stat is os.stat
    assert not holder.exists("nope")


def test_replacements_pickle_and_copy_by_their_names(replaced):
    for patch, _, replacement in replaced:
        if isinstance(patches._resolve(patch.target), type):
            continue  # a class attribute: the same object as the module function it copies
        assert pickle.loads(pickle.dumps(replacement)) is replacement, patch
        assert copy.copy(replacement) is replacement and copy.deepcopy(replacement) is replacement


def test_a_pickled_replacement_is_the_unhooked_original_in_a_process_without_hooks(hooked):
    import subprocess

    data = pickle.dumps([os.stat, open, os.path.exists])
    code = "import os, pickle, sys; f = pickle.loads(sys.stdin.buffer.read());"
    code += "assert f == [os.stat, open, os.path.exists], f"
    subprocess.run([sys.executable, "-I", "-c", code], input=data, check=True)
