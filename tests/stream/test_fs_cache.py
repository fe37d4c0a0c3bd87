"""``written_in_place``: a file written under a temporary name beside its place is there whole
or not at all."""

from __future__ import annotations

import pytest

from dvc_stream.stream.fs_cache import written_in_place


def test_written_file_replaces_its_place_in_one_step(tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with written_in_place(str(dest)) as tmp:
        with open(tmp, "wb") as fobj:
            fobj.write(b"new")
        assert dest.read_bytes() == b"old"
    assert dest.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_failed_write_leaves_nothing(tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(OSError, match="short read"), written_in_place(str(dest)) as tmp:
        with open(tmp, "wb") as fobj:
            fobj.write(b"half")
        raise OSError("short read")
    assert list(tmp_path.iterdir()) == []
