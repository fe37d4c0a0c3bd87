"""pytest fixtures for code that talks to a DVC S3 remote (the ``pytest11`` entry point).

Fixtures: ``moto_server`` (session), ``s3_bucket``, ``dvc_repo``, ``latency_proxy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from dvc_stream.testing.moto import MotoServer
    from dvc_stream.testing.proxy import LatencyProxy
    from dvc_stream.testing.repos import DvcRepo


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server on 127.0.0.1 for the whole session."""
    from dvc_stream.testing.moto import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A fresh, empty bucket on the session's moto server."""
    return moto_server.new_bucket()


@pytest.fixture
def dvc_repo(tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> DvcRepo:
    """A git + DVC repo in ``tmp_path/"repo"`` with remote ``storage`` on a fresh bucket.

    ``os.environ`` gets the same isolated environment as the repo's subprocesses, so in-process
    DVC API calls see the same config, credentials and site cache.
    """
    from dvc_stream.testing.repos import make_repo

    repo = make_repo(tmp_path / "repo", moto_server)
    for name, value in repo.env.items():
        monkeypatch.setenv(name, value)
    return repo


@pytest.fixture
def latency_proxy(moto_server: MotoServer) -> Iterator[LatencyProxy]:
    """A started ``LatencyProxy`` (rtt 0, no faults) in front of ``moto_server``."""
    from dvc_stream.testing.proxy import LatencyProxy

    with LatencyProxy(moto_server.host, moto_server.port) as proxy:
        yield proxy
