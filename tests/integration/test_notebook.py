"""Jupyter: ``examples/notebook/stream.ipynb`` in a real kernel (``install_hooks()``, reads,
``prefetch()``, ``uninstall_hooks()``), and a kernel started under ``dvc stream``."""

from __future__ import annotations

import os
import sys

import pytest

from .conftest import IMAGES, NOTEBOOK_EXAMPLE, stream

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("PIL")

pytestmark = pytest.mark.slow


def _stdout_by_tag(notebook) -> dict[str, str]:
    out = {}
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            out[tag] = "".join(
                o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream"
            )
    return out


def test_notebook_streams_then_uninstalls(image_repo, monkeypatch):
    clone = image_repo.fresh_clone()
    for name, value in clone.env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOK_EXAMPLE / "stream.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(clone.root)}},
    )
    client.execute()
    out = _stdout_by_tag(notebook)
    first = image_repo.files["class0/img0000.png"]
    assert out["install"] == "pulled before: False\nvisible now: True\n"
    assert out["listing"] == f"['class0', 'class1', 'class2', 'class3'] {first}\n"
    assert out["image"] == "(32, 32) RGB\n"
    assert out["prefetch"] == "4 files read\n"
    assert out["uninstall"] == "fetched: 5 files\nstill there: True\nabsent again: True\n"
    present = sorted(clone.tracked_files(IMAGES))
    assert present == ["class0/img0000.png"] + [f"class1/img{i:04d}.png" for i in range(4)]


def _run_cells(repo, monkeypatch, *sources: str) -> list[str]:
    """Run code cells in a fresh kernel with cwd ``repo.root``; the stdout of each cell."""
    for name, value in repo.env.items():
        monkeypatch.setenv(name, value)
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        allow_errors=True,
        resources={"metadata": {"path": str(repo.root)}},
    )
    client.execute()
    return [
        "".join(o.get("text", "") or o.get("ename", "") for o in cell.outputs)
        for cell in notebook.cells
    ]


INSTALL = "import builtins, io, dvc_stream\ndvc_stream.install_hooks('.', prefetch='none')"
SIZE = "print(len({}('data/images/class3/img0001.png', 'rb').read()))"


def test_kernel_reads_through_io_open_and_builtins_open(image_repo, monkeypatch):
    clone = image_repo.fresh_clone()
    size = str(image_repo.files["class3/img0001.png"])
    out = _run_cells(
        clone, monkeypatch, INSTALL, SIZE.format("io.open"), SIZE.format("builtins.open")
    )
    assert out[1:] == [size + "\n", size + "\n"]


def test_kernel_bare_open_in_a_cell(image_repo, monkeypatch):
    # IPython gives cells its own `open`, which calls the `io.open` IPython bound at its import,
    # before install_hooks(): the hooks patch that name too.
    clone = image_repo.fresh_clone()
    size = str(image_repo.files["class3/img0001.png"])
    out = _run_cells(clone, monkeypatch, INSTALL, SIZE.format("open"))
    assert out[1] == size + "\n"


def test_kernel_started_by_dvc_stream_needs_no_install(image_repo):
    # `dvc stream jupyter lab` (here: `jupyter execute`): each kernel is a child process, so
    # the hooks are there from its start, before IPython, and a bare open() works too.
    clone = image_repo.fresh_clone()
    source = "import os\nprint(sorted(os.listdir('data/images/class2'))[:2])\n" + SIZE.format(
        "open"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    path = clone.root / "look.ipynb"
    nbformat.write(notebook, path)
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    stream(clone, jupyter, "execute", "--inplace", path.name, options=("--prefetch", "none"))
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs)
    size = image_repo.files["class3/img0001.png"]
    assert text == f"['img0000.png', 'img0001.png']\n{size}\n"
