"""The command's interpreter need not have dvc installed; an existing sitecustomize still runs."""

from __future__ import annotations

import os
import sys

import pytest

from .conftest import last_json, md5, stream_python, write_script

INTERPRETERS = [
    f"/root/.pyenv/versions/{version}/bin/python" for version in ("3.10.13", "3.12.1", "3.13.0")
]

LOOK = r"""
import glob, hashlib, json, os, pathlib, sys
root = "data/images"
out = {"version": list(sys.version_info[:2]), "marker": os.environ.get("SITE_MARKER")}
try:
    import dvc  # noqa: F401
    out["has_dvc"] = True
except ImportError:
    out["has_dvc"] = False
out["hooked"] = "_dvc_stream_hooks.patches" in sys.modules
out["walk"] = sorted(
    os.path.relpath(os.path.join(t, n), root) for t, _d, names in os.walk(root) for n in names
)
out["rglob"] = sorted(p.relative_to(root).as_posix() for p in pathlib.Path(root).rglob("*.bin"))
out["pglob"] = sorted(p.name for p in pathlib.Path(root).glob("*/*/*.bin"))
out["glob"] = sorted(
    os.path.relpath(p, root) for p in glob.glob(root + "/**/*.bin", recursive=True)
)
out["iterdir"] = sorted(p.name for p in pathlib.Path(root).iterdir())
out["sizes"] = {p: os.stat(os.path.join(root, p)).st_size for p in out["walk"]}
out["psizes"] = {p: pathlib.Path(root, p).stat().st_size for p in out["walk"]}
out["isfile"] = all(pathlib.Path(root, p).is_file() for p in out["walk"])
out["md5"] = {}
for i, p in enumerate(out["walk"]):
    path = pathlib.Path(root, p)
    data = path.read_bytes() if i % 2 else open(path, "rb").read()
    out["md5"][p] = hashlib.md5(data).hexdigest()
print(json.dumps(out))
"""


@pytest.fixture
def dataset(dvc_repo):
    data = dvc_repo.make_dataset(
        "data/images", nfiles=12, depth=2, fanout=2, sizes=lambda i: 10 + 31 * i
    )
    dvc_repo.wipe()
    return data


def _expected(dataset) -> dict:
    names = sorted(dataset.files)
    return {
        "walk": names,
        "rglob": names,
        "pglob": sorted(os.path.basename(n) for n in names),
        "glob": names,
        "iterdir": ["d0", "d1"],
        "sizes": {n: len(dataset.files[n]) for n in names},
        "psizes": {n: len(dataset.files[n]) for n in names},
        "isfile": True,
        "md5": {n: md5(dataset.files[n]) for n in names},
    }


@pytest.mark.parametrize(
    "python", INTERPRETERS, ids=lambda p: os.path.basename(os.path.dirname(os.path.dirname(p)))
)
def test_other_interpreter_without_dvc(dvc_repo, dataset, tmp_path, python):
    if not os.path.exists(python):
        pytest.skip(f"{python} is not installed")
    script = write_script(tmp_path, "look.py", LOOK)
    got = last_json(stream_python(dvc_repo, script, python=python))
    assert got["has_dvc"] is False
    assert got["hooked"] is True
    assert {k: got[k] for k in _expected(dataset)} == _expected(dataset)
    assert dvc_repo.tracked_files("data/images") == dataset.files


@pytest.mark.parametrize(
    "python",
    [sys.executable, INTERPRETERS[0], INTERPRETERS[-1]],
    ids=["venv", "3.10", "3.13"],
)
def test_existing_sitecustomize_still_runs(dvc_repo, dataset, tmp_path, python):
    if not os.path.exists(python):
        pytest.skip(f"{python} is not installed")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nos.environ['SITE_MARKER'] = 'user sitecustomize ran'\n"
    )
    env = {**dvc_repo.env, "PYTHONPATH": str(site)}
    script = write_script(tmp_path, "look.py", LOOK)
    got = last_json(stream_python(dvc_repo, script, python=python, env=env))
    assert got["marker"] == "user sitecustomize ran"
    assert got["hooked"] is True
    assert {k: got[k] for k in _expected(dataset)} == _expected(dataset)
