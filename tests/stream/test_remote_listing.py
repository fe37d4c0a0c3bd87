"""The choice between listing an object store and asking for each object's size."""

from __future__ import annotations

import pytest

from dvc_stream.stream.remote_listing import ALL, BY_PREFIX, EACH, _oid_of, plan


@pytest.mark.parametrize(
    ("wanted", "prefixes", "per_prefix", "expected"),
    [
        (500, 256, 20, ALL),  # 5,000 objects in all: 6 listing requests
        (500, 256, 4_000, EACH),  # a million objects: 1,024 or 4,000 requests against 500
        (20_000, 256, 4_000, ALL),  # many wanted from a large store: 1,024 requests
        (200, 40, 4_000, BY_PREFIX),  # few prefixes wanted: 160 requests against 200
        (8, 8, 4, ALL),
    ],
)
def test_the_cheapest_way_is_chosen(wanted, prefixes, per_prefix, expected):
    assert plan(wanted, prefixes, per_prefix, whole_store=True) == expected


def test_a_legacy_store_is_never_listed_whole():
    # NOTE: it is the remote's root, which also holds the files/md5 store
    assert plan(500, 256, 20, whole_store=False) == BY_PREFIX


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bucket/store/files/md5/ab/cdef0123", "abcdef0123"),
        ("bucket/store/files/md5/ab/cdef0123.dir", "abcdef0123.dir"),
        ("bucket/store/files/md5/ab", None),
        ("bucket/store/files/md5/abc/def", None),
        ("bucket/store/files/md5/ab/cd/ef", None),
        ("bucket/other/files/md5/ab/cdef", None),
    ],
)
def test_only_objects_of_the_store_are_read_from_a_listing(name, expected):
    assert _oid_of(name, "bucket/store/files/md5/") == expected
