"""The table of DVC functions patched for the partial workspace: installed once, undone exactly."""

from __future__ import annotations

import importlib

import dvc.repo  # noqa: F401  NOTE: its import installs the table (the bootstrap's repo hook)
import pytest

from dvc_stream.workspace import dvc_patches


def _current(patch: dvc_patches.Patch):
    module, _, cls = patch.target.partition(":")
    owner = importlib.import_module(module)
    return vars(getattr(owner, cls) if cls else owner)[patch.name]


@pytest.fixture
def reinstalled():
    """The table uninstalled for the test; installed again after it, as the bootstrap left it."""
    assert dvc_patches.installed()
    dvc_patches.uninstall()
    yield
    dvc_patches.uninstall()
    dvc_patches.install()


def test_install_is_idempotent_and_uninstall_restores_every_original(reinstalled):
    originals = [_current(patch) for patch in dvc_patches.PATCHES]
    assert not any(o.__module__.startswith("dvc_stream") for o in originals)
    dvc_patches.install()
    replaced = [_current(patch) for patch in dvc_patches.PATCHES]
    assert all(r.__module__ == dvc_patches.__name__ for r in replaced)
    dvc_patches.install()
    assert [_current(patch) for patch in dvc_patches.PATCHES] == replaced
    dvc_patches.uninstall()
    assert [_current(patch) for patch in dvc_patches.PATCHES] == originals
    assert not dvc_patches.installed()


def test_a_failed_install_leaves_nothing_patched(reinstalled, monkeypatch):
    originals = [_current(patch) for patch in dvc_patches.PATCHES]
    broken = dvc_patches.Patch("dvc.output:Output", "no_such_attribute", lambda original: original)
    monkeypatch.setattr(dvc_patches, "PATCHES", (*dvc_patches.PATCHES, broken))
    with pytest.raises(KeyError):
        dvc_patches.install()
    assert [_current(patch) for patch in dvc_patches.PATCHES[:-1]] == originals
    assert not dvc_patches.installed()
