"""Real workloads under ``dvc stream``: PyTorch DataLoader workers, torchrun, a Jupyter kernel,
TensorFlow and Keras under ``--mount``, and third-party file readers.

They need the ``integration`` extra (torch, tensorflow-cpu, Pillow, pandas, nbclient, ...) and
take minutes, so the default test run leaves this directory out: its tests are collected only
when the command line names it (``nox -s integration``, ``pytest tests/integration``). Each
module also skips itself when its libraries are not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dvc_stream.testing.programs import run as run  # re-exported for the tests
from dvc_stream.testing.repos import DvcRepo, make_repo

HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "examples"
PYTORCH_EXAMPLE = EXAMPLES / "pytorch"
NOTEBOOK_EXAMPLE = EXAMPLES / "notebook"
IMAGES = "data/images"


def _requested(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


# NOTE: a hook rather than `--ignore` in addopts or a marker filter: the default run never
# imports these modules (nor torch), and naming the directory or one of its tests is enough to
# run them, with no option to remember.
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.parent == HERE and collection_path.name.startswith("test_"):
        return None if _requested(config) else True
    return None


# -- helpers ------------------------------------------------------------------------------------


def stream(
    repo: DvcRepo, *command: str | Path, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``dvc stream [options] -- command...`` in ``repo``; a failure shows both outputs."""
    return repo.dvc("stream", *options, "--", *map(str, command))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def pulled_clone(origin: DvcRepo) -> DvcRepo:
    clone = origin.clone()
    clone.dvc("pull", "-q")
    return clone


def tracked_sizes(repo: DvcRepo, path: str) -> dict[str, int]:
    return {relpath: len(data) for relpath, data in repo.tracked_files(path).items()}


# -- the image repo shared by the PyTorch and notebook tests --------------------------------------


@dataclass
class ImageRepo:
    """A pushed repo with ``data/images`` (4 classes x 16 PNGs) and ``train.py`` committed."""

    origin: DvcRepo
    files: dict[str, int]  # relpath under data/images -> size

    @property
    def total_size(self) -> int:
        return sum(self.files.values())

    def fresh_clone(self) -> DvcRepo:
        """A clone that has pulled nothing: no tracked data, empty caches."""
        return self.origin.clone()


@pytest.fixture(scope="session")
def image_repo(tmp_path_factory: pytest.TempPathFactory, moto_server) -> ImageRepo:
    origin = make_repo(tmp_path_factory.mktemp("images") / "origin", moto_server)
    shutil.copy(PYTORCH_EXAMPLE / "train.py", origin.root / "train.py")
    run(origin, sys.executable, PYTORCH_EXAMPLE / "make_dataset.py", IMAGES)
    origin.dvc("add", "-q", IMAGES)
    origin.git("add", "train.py", f"{IMAGES}.dvc", "data/.gitignore")
    origin.commit("images and train.py")
    origin.push()
    return ImageRepo(origin, tracked_sizes(origin, IMAGES))
