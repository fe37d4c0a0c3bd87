import pytest

from dvc_stream.stream import stats as stats_module
from dvc_stream.stream.stats import Stats


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(stats_module.time, "monotonic", lambda: now[0])
    return now


def test_fetch_seconds_is_zero_before_any_fetch():
    assert Stats().as_dict()["fetch_seconds"] == 0.0


def test_fetch_seconds_spans_the_first_to_the_last_download(clock):
    stats = Stats()
    stats.fetched()
    clock[0] = 101.5
    stats.fetched()
    clock[0] = 104.25
    stats.fetched()
    assert stats.as_dict()["fetch_seconds"] == 4.25


def test_private_timestamps_stay_out_of_the_json(tmp_path):
    import json

    stats = Stats()
    stats.fetched()
    path = tmp_path / "stats.json"
    stats.write_json(str(path), jobs=4)
    data = json.loads(path.read_text())
    assert not [key for key in data if key.startswith("_")]
    assert data["jobs"] == 4
