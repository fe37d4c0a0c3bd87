"""The hooked partial workspace must look like the pulled one."""

from __future__ import annotations

import glob
import io
import os
import shutil
import stat
from pathlib import Path

import pytest

from dvc_stream.hooks import patches

from .conftest import TRACKED


def both(view, fn):
    """(fn() in the pulled copy without hooks, fn() in the partial workspace with hooks)."""
    assert not patches.installed()
    os.chdir(view.pulled)
    expected = fn()
    patches.install(view.resolver)
    try:
        os.chdir(view.workspace)
        actual = fn()
    finally:
        patches.uninstall()
    return expected, actual


def read(path, mode="rb", opener=None):
    # NOTE: not ``opener=open``: a default binds the builtin before the hooks are installed
    with (opener or open)(path, mode) as f:
        return f.read()


def opened(*args):
    with open(*args):
        pass


def error_of(fn):
    try:
        fn()
    except OSError as exc:
        return type(exc), exc.errno, exc.strerror, exc.filename
    raise AssertionError("no error")


def _stat_view(st):
    if stat.S_ISDIR(st.st_mode):  # directory sizes, link counts and mtimes are the filesystem's
        return (stat.S_IFDIR,)
    return st.st_size, st.st_mode, st.st_mtime, st.st_nlink


def present(path):
    """Whether ``path`` really is in the workspace."""
    with patches.use_original():
        return os.path.lexists(path)


def _scandir_view(path):
    with os.scandir(path) as it:
        entries = list(it)
    return sorted(
        (e.name, e.path, e.is_dir(), e.is_file(), e.is_symlink(), _stat_view(e.stat()))
        for e in entries
    )


LISTED = [".", "data", "data/sub", "data/img", "data/img/nested", "data/sub/deep", "src"]
PATHS = [
    "data/a.txt",
    "data/b.bin",
    "data/run.sh",
    "data/sub/deep/d.png",
    "data/img",
    "data/img/1.png",
    "model.pkl",
    "data",
    "README.md",
    "data/nope.txt",
    "nope",
]

CASES = {
    "listdir": lambda: [sorted(os.listdir(p)) for p in LISTED],
    "listdir-pathlike": lambda: sorted(os.listdir(Path("data/img"))),
    "listdir-cwd": lambda: (os.chdir("data/img"), sorted(os.listdir()))[1],
    "scandir": lambda: [_scandir_view(p) for p in LISTED],
    "stat": lambda: [_stat_view(os.stat(p)) for p in PATHS if os.path.exists(p)],
    "lstat": lambda: [_stat_view(os.lstat(p)) for p in PATHS if os.path.lexists(p)],
    "stat-pathlike": lambda: _stat_view(os.stat(Path("data/b.bin"))),
    "exists": lambda: [os.path.exists(p) for p in PATHS],
    "lexists": lambda: [os.path.lexists(p) for p in PATHS],
    "isfile": lambda: [os.path.isfile(p) for p in PATHS],
    "isdir": lambda: [os.path.isdir(p) for p in PATHS],
    "islink": lambda: [os.path.islink(p) for p in PATHS],
    "getsize": lambda: [os.path.getsize(p) for p in PATHS if os.path.isfile(p)],
    "access": lambda: [os.access(p, m) for p in PATHS for m in (os.F_OK, os.R_OK, os.X_OK)],
    "walk": lambda: sorted((d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(".")),
    "walk-bottom-up": lambda: sorted(
        (d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk("data", topdown=False)
    ),
    "walk-absent": lambda: sorted(
        (d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk("data/img")
    ),
    "glob": lambda: sorted(glob.glob("data/*")),
    "glob-recursive": lambda: sorted(glob.glob("data/**/*.png", recursive=True)),
    "glob-all": lambda: sorted(glob.glob("**", recursive=True)),
    "glob-root-dir": lambda: sorted(glob.glob("**/*.txt", root_dir="data", recursive=True)),
    "glob-dirs": lambda: sorted(glob.glob("data/*/")),
    "glob-literal": lambda: sorted(glob.glob("data/img/1.png") + glob.glob("model.pkl")),
    "iglob": lambda: sorted(glob.iglob("data/*/*.png")),
    "read": lambda: [read(p) for p in TRACKED],
    "read-text": lambda: read("data/notes.txt", "r"),
    "io-open": lambda: read("data/b.bin", opener=lambda p, m: io.open(p, m)),  # noqa: UP020, SIM115
    "fileio": lambda: read("data/img/2.png", "r", lambda p, m: io.FileIO(p, m)),
    "os-open": lambda: os.read(os.open("data/e.png", os.O_RDONLY), 1000),
    "path-exists": lambda: [Path(p).exists() for p in PATHS],
    "path-is-file": lambda: [Path(p).is_file() for p in PATHS],
    "path-is-dir": lambda: [Path(p).is_dir() for p in PATHS],
    "path-stat": lambda: [_stat_view(Path(p).stat()) for p in PATHS if Path(p).exists()],
    "path-lstat": lambda: [_stat_view(Path(p).lstat()) for p in PATHS if Path(p).exists()],
    "path-iterdir": lambda: [sorted(map(str, Path(p).iterdir())) for p in LISTED],
    "path-glob": lambda: sorted(map(str, Path("data").glob("*/*.png"))),
    "path-glob-recursive": lambda: sorted(map(str, Path(".").glob("data/**/*.png"))),
    "path-glob-dirs": lambda: sorted(map(str, Path("data").glob("**"))),
    "path-rglob": lambda: sorted(map(str, Path("data").rglob("*.txt"))),
    "path-rglob-abs": lambda: sorted(
        os.path.relpath(p) for p in Path(os.getcwd(), "data").rglob("*")
    ),
    "path-walk": lambda: (
        sorted((str(d), sorted(ds), sorted(fs)) for d, ds, fs in Path("data").walk())
        if hasattr(Path, "walk")
        else None
    ),
    "walk-followlinks": lambda: sorted(
        (d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(".", followlinks=True)
    ),
    "path-read-bytes": lambda: [Path(p).read_bytes() for p in TRACKED],
    "path-read-text": lambda: Path("data/sub/deep/f.txt").read_text(),
    "path-open": lambda: read("model.pkl", opener=lambda p, m: Path(p).open(m)),  # noqa: SIM115
}


@pytest.mark.parametrize("case", CASES)
def test_partial_workspace_looks_pulled(view, case):
    expected, actual = both(view, CASES[case])
    assert actual == expected


def test_listing_keeps_local_order_then_sorted_missing(hooked):
    local = patches.original("os.listdir")("data")
    names = os.listdir("data")
    assert names[: len(local)] == local
    assert names[len(local) :] == sorted(set(names) - set(local))
    assert len(names) == len(set(names))
    assert [e.name for e in os.scandir("data")] == names


def test_absent_dir_entries(hooked):
    with os.scandir("data/img") as it:
        entries = {e.name: e for e in it}
    one = entries["1.png"]
    assert one.path == "data/img/1.png"
    assert os.fspath(one) == "data/img/1.png"
    assert one.inode() == one.inode() > 0
    assert one.stat().st_ino == one.inode()
    assert entries["nested"].is_dir() and not entries["nested"].is_file()
    assert one.stat().st_mode == stat.S_IFREG | 0o644
    assert os.stat("data/run.sh").st_mode == stat.S_IFREG | 0o755
    assert os.stat("data/img").st_mode == stat.S_IFDIR | 0o755
    st = os.stat("data/b.bin")
    assert (st.st_uid, st.st_gid, st.st_nlink) == (os.getuid(), os.getgid(), 1)
    assert (
        st.st_atime == st.st_mtime == st.st_ctime == os.stat(hooked.remote / "data/b.bin").st_mtime
    )
    scan = os.scandir("data")
    next(scan)
    scan.close()
    assert list(scan) == []
    assert hooked.resolver.count("materialize") == 0


def test_reading_materializes_once_and_keeps_name(hooked):
    with open("data/img/1.png", "rb") as f:
        assert f.read() == TRACKED["data/img/1.png"]
        assert f.name == "data/img/1.png"
    assert (hooked.workspace / "data/img/1.png").read_bytes() == TRACKED["data/img/1.png"]
    with open("data/img/1.png", "rb") as f:
        f.read()
    assert hooked.resolver.count("materialize") == 1


def test_local_copy_wins(hooked):
    (hooked.workspace / "data/img").mkdir()
    (hooked.workspace / "data/img/1.png").write_bytes(b"local")
    assert read("data/img/1.png") == b"local"
    assert os.path.getsize("data/img/1.png") == 5
    assert sorted(os.listdir("data/img")) == ["1.png", "2.png", "nested"]
    assert hooked.resolver.count("materialize") == 0
    assert hooked.resolver.count("lookup") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: os.stat("nope"),
        lambda: os.stat("data/nope.txt"),
        lambda: os.lstat("data/nope/x"),
        lambda: os.listdir("data/nope"),
        lambda: os.scandir("src/nope"),
        lambda: os.chdir("data/nope"),
        lambda: opened("data/nope.txt"),
        lambda: opened("nope/x.txt", "w"),
        lambda: opened("data/nope/x.txt", "w"),
        lambda: io.FileIO("data/nope.txt"),
        lambda: os.open("data/nope.txt", os.O_RDONLY),
        lambda: Path("data/nope.txt").stat(),
        lambda: Path("data/nope.txt").read_bytes(),
        lambda: shutil.copyfile("data/nope.txt", "x"),
        lambda: opened("data/img"),
        lambda: opened("data"),
    ],
)
def test_untracked_missing_errors_are_unchanged(view, call):
    expected, actual = both(view, lambda: error_of(call))
    assert actual == expected


def test_untracked_paths_never_reach_the_resolver(hooked):
    os.stat("README.md")
    os.listdir("src")
    list(os.scandir("src"))
    read("src/train.py")
    glob.glob("src/**", recursive=True)
    assert not os.path.exists("nope")
    assert not os.path.exists("/nonexistent/dir/x")
    assert hooked.resolver.calls == []


def test_existence_checks_never_ask_for_a_size(hooked):
    assert os.path.exists("data/b.bin")
    assert os.path.lexists("model.pkl")
    assert os.path.isfile("data/sub/deep/f.txt")
    assert not os.path.isdir("data/sub/deep/f.txt")
    assert os.path.isdir("data/img/nested")
    assert not os.path.isfile("data/img")
    assert not os.path.exists("data/missing.txt")
    assert not os.path.isfile(os.path.join(hooked.workspace, "data", "nope"))
    assert hooked.resolver.count("kind") == 8
    assert hooked.resolver.count("lookup") == 0
    assert not os.path.exists("data/b.bin/x")


def test_existence_checks_of_present_paths_stay_local(hooked):
    assert os.path.exists("data/a.txt")
    assert os.path.isfile("data/sub/c.txt")
    assert os.path.isdir("data/sub")
    assert hooked.resolver.calls == []


def test_fd_dir_fd_and_bytes_paths_go_straight_through(hooked):
    fd = os.open("data", os.O_RDONLY)
    try:
        assert sorted(os.listdir(fd)) == ["a.txt", "sub"]
        with pytest.raises(FileNotFoundError):
            os.stat("b.bin", dir_fd=fd)
        with pytest.raises(FileNotFoundError):
            os.open("b.bin", os.O_RDONLY, dir_fd=fd)
    finally:
        os.close(fd)
    assert sorted(os.listdir(b"data")) == [b"a.txt", b"sub"]
    with pytest.raises(FileNotFoundError):
        os.stat(b"data/b.bin")
    assert hooked.resolver.calls == []


def test_resolver_failure_on_untracked_falls_back(hooked, monkeypatch):
    def broken(path):
        raise RuntimeError("bug")

    monkeypatch.setattr(hooked.resolver, "is_candidate", broken)
    assert sorted(os.listdir("data")) == ["a.txt", "sub"]
    assert read("data/a.txt") == TRACKED["data/a.txt"]
    with pytest.raises(FileNotFoundError):
        os.stat("data/b.bin")


def test_write_into_absent_tracked_dir(hooked):
    with open("data/img/nested/new.txt", "w") as f:
        f.write("new")
    assert (hooked.workspace / "data/img/nested/new.txt").read_text() == "new"
    assert sorted(os.listdir("data/img/nested")) == ["3.png", "new.txt"]
    fd = os.open("data/sub/deep/g.txt", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.close(fd)
    assert os.path.getsize("data/sub/deep/g.txt") == 0
    assert hooked.resolver.count("materialize") == 0


def test_write_truncates_absent_tracked_file(hooked):
    with open("data/notes.txt", "w") as f:
        f.write("x")
    assert (hooked.workspace / "data/notes.txt").read_text() == "x"


@pytest.mark.parametrize("mode", ["a", "ab", "a+"])
def test_append_extends_real_content(hooked, mode):
    with open("data/notes.txt", mode) as f:
        f.write("more\n" if "b" not in mode else b"more\n")
    assert (hooked.workspace / "data/notes.txt").read_bytes() == b"first line\nmore\n"


def test_read_write_mode_materializes(hooked):
    with open("data/notes.txt", "r+") as f:
        assert f.read() == "first line\n"
        f.write("x")
    assert (hooked.workspace / "data/notes.txt").read_bytes() == b"first line\nx"


def test_os_open_append_and_exclusive(hooked):
    fd = os.open("data/notes.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"z")
    os.close(fd)
    assert (hooked.workspace / "data/notes.txt").read_bytes() == b"first line\nz"
    with pytest.raises(FileExistsError):
        os.open("data/e.png", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with pytest.raises(FileExistsError):
        opened("data/e.png", "x")
    assert not present(hooked.workspace / "data/e.png")


def test_failing_materialize_propagates(hooked):
    target = str(hooked.workspace / "data/b.bin")
    hooked.resolver.fail.add(target)
    for call in (
        lambda: opened("data/b.bin", "rb"),
        lambda: Path("data/b.bin").read_bytes(),
        lambda: os.open("data/b.bin", os.O_RDONLY),
        lambda: shutil.copyfile("data/b.bin", hooked.workspace / "copy"),
    ):
        with pytest.raises(OSError, match=r"failed to fetch .*b\.bin.* from remote") as exc:
            call()
        assert not isinstance(exc.value, FileNotFoundError)
    assert not present(hooked.workspace / "data/b.bin")
    assert not present(hooked.workspace / "copy")
    assert os.path.getsize("data/b.bin") == len(TRACKED["data/b.bin"])


@pytest.mark.parametrize("copy", [shutil.copy, shutil.copyfile, shutil.copy2])
def test_shutil_copy_materializes(hooked, tmp_path, copy):
    dst = tmp_path / "out.bin"
    copy("data/b.bin", dst)
    assert dst.read_bytes() == TRACKED["data/b.bin"]
    assert present(hooked.workspace / "data/b.bin")


def test_chdir_into_absent_tracked_dir(hooked):
    os.chdir("data/img/nested")
    assert os.getcwd() == str(hooked.workspace / "data/img/nested")
    assert os.listdir() == ["3.png"]
    assert read("3.png") == TRACKED["data/img/nested/3.png"]


def test_fileio_isinstance_still_holds(hooked):
    with open("data/a.txt", "rb", buffering=0) as raw:
        assert isinstance(raw, io.FileIO)
    with io.FileIO("data/e.png") as raw:
        assert isinstance(raw, io.FileIO)
        assert raw.read() == TRACKED["data/e.png"]
    assert issubclass(type(raw), io.FileIO)
