"""``sqlite3.connect`` on a tracked database that is not in the workspace.

SQLite opens the file in C, and creates it when it is missing: without its entry in the table, the
program would get an empty database, and that empty file would then hide the tracked one.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from dvc_stream.hooks import patches

from .test_patches import both

DB = "data/sub/t.sqlite"


@pytest.fixture
def db_view(view):
    """The view, with a tracked SQLite database (absent from the workspace)."""
    target = view.remote / DB
    con = sqlite3.connect(target)
    with con:
        con.execute("create table t (value integer)")
        con.executemany("insert into t values (?)", [(i,) for i in range(10)])
    con.close()
    shutil.copy2(target, view.pulled / DB)
    return view


def _total(database, **kwargs) -> int:
    con = sqlite3.connect(database, **kwargs)
    try:
        return con.execute("select sum(value) from t").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize(
    ("database", "kwargs"),
    [
        pytest.param(lambda: DB, {}, id="str"),
        pytest.param(lambda: Path(DB), {}, id="Path"),
        pytest.param(lambda: DB.encode(), {}, id="bytes"),
        pytest.param(lambda: f"file:{DB}?mode=ro", {"uri": True}, id="uri-ro"),
        pytest.param(lambda: f"file://{os.path.abspath(DB)}", {"uri": True}, id="uri-absolute"),
        pytest.param(lambda: f"file:{DB.replace('/', '%2F')}", {"uri": True}, id="uri-quoted"),
    ],
)
def test_connect_fetches_the_tracked_database(db_view, database, kwargs):
    expected, actual = both(db_view, lambda: _total(database(), **kwargs))
    assert actual == expected == 45
    assert (db_view.workspace / DB).read_bytes() == (db_view.remote / DB).read_bytes()
    assert db_view.resolver.count("materialize") == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.13: as unhooked
def test_connect_passes_the_uri_flag_positionally(db_view):
    os.chdir(db_view.workspace)
    patches.install(db_view.resolver)
    try:
        args = (5.0, 0, "DEFERRED", True, sqlite3.Connection, 16, True)  # ..., uri=True
        con = sqlite3.connect(f"file:{DB}?mode=ro", *args)
        assert con.execute("select count(*) from t").fetchone()[0] == 10
        con.close()
    finally:
        patches.uninstall()


def test_connect_leaves_other_databases_alone(db_view):
    os.chdir(db_view.workspace)
    patches.install(db_view.resolver)
    try:
        for database, kwargs in [
            (":memory:", {}),
            ("", {}),
            ("file:shared?mode=memory&cache=shared", {"uri": True}),
            ("data/sub/new.sqlite", {}),  # a new database in a tracked directory: created
            ("scratch.sqlite", {}),  # untracked
        ]:
            sqlite3.connect(database, **kwargs).close()
    finally:
        patches.uninstall()
    assert db_view.resolver.count("materialize") == 0
    assert (db_view.workspace / "data/sub/new.sqlite").exists()
    assert not (db_view.workspace / DB).exists()
    assert all("scratch" not in path for _, path in db_view.resolver.calls)


def test_present_database_is_opened_as_it_is(db_view):
    local = db_view.workspace / DB
    local.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(local)
    with con:
        con.execute("create table t (value integer)")
        con.execute("insert into t values (7)")
    con.close()
    os.chdir(db_view.workspace)
    patches.install(db_view.resolver)
    try:
        assert _total(DB) == 7  # the local copy wins
    finally:
        patches.uninstall()
    assert db_view.resolver.count("materialize") == 0


def test_sqlite3_and_dbapi2_share_one_replacement_and_get_the_original_back(db_view):
    import _sqlite3

    original = _sqlite3.connect
    assert sqlite3.connect is sqlite3.dbapi2.connect is original
    patches.install(db_view.resolver)
    try:
        assert sqlite3.connect is sqlite3.dbapi2.connect is not original
    finally:
        patches.uninstall()
    assert sqlite3.connect is sqlite3.dbapi2.connect is original


def test_sqlite3_imported_after_install_is_patched_once_and_restored(db_view, monkeypatch):
    import _sqlite3

    for name in ("sqlite3", "sqlite3.dbapi2"):
        monkeypatch.delitem(sys.modules, name)
    os.chdir(db_view.workspace)
    patches.install(db_view.resolver)
    try:
        fresh = importlib.import_module("sqlite3")
        assert fresh is not sqlite3
        assert fresh.connect is fresh.dbapi2.connect is not _sqlite3.connect
        con = fresh.connect(DB)
        assert con.execute("select count(*) from t").fetchone()[0] == 10
        con.close()
    finally:
        patches.uninstall()
    assert fresh.connect is fresh.dbapi2.connect is _sqlite3.connect
