"""``dvc stream`` suggests ``--mount``, once, to a program that imported a C reader (OpenCV here,
a stand-in named ``cv2``), listed a tracked folder and stat'ed its files through the hooks, and
then opened them from C; never to one that reads them through Python."""

from __future__ import annotations

import pytest

from .conftest import stream_python, write_script

HINT = "run it with `dvc stream --mount`"

# argv: the folder of the stand-in cv2 ("-": none), the tracked folder, and how to open its
# files: "c" (libc's open and read, through ctypes: the hooks never see them) or "python".
PROGRAM = r"""
import ctypes, os, sys

fake, root, how = sys.argv[1:4]
if fake != "-":
    sys.path.insert(0, fake)
    import cv2

paths = [os.path.join(root, name) for name in sorted(os.listdir(root))]
assert paths and all(os.path.isfile(p) for p in paths)
libc = ctypes.CDLL(None, use_errno=True)
read = 0
for path in paths:
    if how == "c":
        fd = libc.open(path.encode(), os.O_RDONLY)
        if fd < 0:
            continue  # not in the workspace: as cv2.imread returns None
        buf = ctypes.create_string_buffer(1 << 16)
        read += libc.read(fd, buf, len(buf))
        libc.close(fd)
    else:
        with open(path, "rb") as f:
            read += len(f.read())
print(read)
"""


@pytest.fixture
def program(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset(nfiles=6, size=512, depth=0)
    dvc_repo.wipe()
    fake = tmp_path / "fake"
    (fake / "cv2").mkdir(parents=True)
    (fake / "cv2" / "__init__.py").write_text('"""A stand-in for OpenCV: its name only."""\n')
    return write_script(tmp_path, "program.py", PROGRAM), str(fake), dataset


def test_a_program_reading_from_c_is_told_to_use_mount(dvc_repo, program):
    script, fake, dataset = program
    proc = stream_python(dvc_repo, script, fake, dataset.path, "c")
    assert proc.stdout.split() == ["0"]  # the C reads found nothing
    lines = [line for line in proc.stderr.splitlines() if HINT in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("WARNING: ")
    assert "(cv2)" in lines[0]


def test_a_program_reading_through_python_is_not(dvc_repo, program):
    script, fake, dataset = program
    proc = stream_python(dvc_repo, script, fake, dataset.path, "python")
    assert proc.stdout.split() == [str(dataset.total_size)]
    assert HINT not in proc.stderr


def test_a_program_without_a_c_reader_is_not(dvc_repo, program):
    script, _fake, dataset = program
    proc = stream_python(dvc_repo, script, "-", dataset.path, "c")
    assert proc.stdout.split() == ["0"]
    assert HINT not in proc.stderr
