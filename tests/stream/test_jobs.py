"""The default ``-j``: from the remote's round trip, not from one slow answer."""

from __future__ import annotations

import json

import pytest
import yaml

from dvc_stream.stream.remotes import MAX_JOBS, jobs_for_latency

from .conftest import stream


@pytest.mark.heavy
def test_one_slow_answer_does_not_set_the_default_jobs(dvc_repo, latency_proxy, tmp_path):
    """A HEAD held 2 s (a busy server, a machine short of CPU) among the start-up probes would
    give -j 128; the fastest probe is the round trip."""
    dvc_repo.make_dataset("data/images", nfiles=4, size=100)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    dir_oid = yaml.safe_load((dvc_repo.root / "data/images.dvc").read_text())["outs"][0]["md5"]
    # NOTE: the first HEAD connects and is not timed; the second is the first timed one.
    latency_proxy.add_fault("stall", method="HEAD", path_contains=dir_oid[2:], stall_s=2, times=2)
    stats_file = tmp_path / "stats.json"
    stream(dvc_repo, "true", options=("--stats", str(stats_file)))
    heads = [p for m, p in latency_proxy.request_log if m == "HEAD" and dir_oid[2:] in p]
    assert len(heads) >= 3
    assert jobs_for_latency(2.0) == MAX_JOBS
    assert json.loads(stats_file.read_text())["jobs"] < MAX_JOBS
