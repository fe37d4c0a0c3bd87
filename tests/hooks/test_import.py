"""The hooks package imports and installs alone, with the standard library only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dvc_stream.hooks

# Loads the hooks as a process started by `dvc stream` does (hooks/site/sitecustomize.py).
LOAD = """
import importlib, importlib.util, os, sys
hooks_dir = sys.argv[1]
before = set(sys.modules)
spec = importlib.util.spec_from_file_location(
    "_h", os.path.join(hooks_dir, "__init__.py"), submodule_search_locations=[hooks_dir]
)
package = importlib.util.module_from_spec(spec)
sys.modules["_h"] = package
spec.loader.exec_module(package)
patches = importlib.import_module("_h.patches")
importlib.import_module("_h.client")

class Nothing:
    def is_candidate(self, path):
        return False
"""

CODE = (
    LOAD
    + """
new = {name.split(".")[0] for name in set(sys.modules) - before} - {"_h"}
foreign = sorted(name for name in new if name not in sys.stdlib_module_names)
assert not foreign, foreign

stat = os.stat
patches.install(Nothing())
assert os.stat is not stat and os.listdir(hooks_dir)
patches.uninstall()
assert os.stat is stat
"""
)


def test_hooks_import_and_install_with_stdlib_only():
    hooks_dir = Path(dvc_stream.hooks.__file__).parent
    # -I: no PYTHONPATH, no site-packages, so no dvc
    subprocess.run([sys.executable, "-I", "-c", CODE, str(hooks_dir)], check=True)


# NOTE: each costs milliseconds to import, with what it imports (pathlib: urllib, ipaddress;
# importlib.abc: pathlib, tempfile; dataclasses: inspect, ast), in every Python process that
# `dvc stream` starts: a DataLoader's spawned workers, torchrun's ranks, a pipeline's stages.
HEAVY = ["pathlib", "tempfile", "logging", "dataclasses", "inspect", "importlib.abc"]


def test_installing_the_hooks_imports_no_heavy_module_the_program_did_not():
    hooks_dir = Path(dvc_stream.hooks.__file__).parent
    code = (
        LOAD
        + f"""
patches.install(Nothing())
imported = sorted(name for name in {HEAVY!r} if name in sys.modules and name not in before)
assert not imported, imported
"""
    )
    # -S: not even `site`, so that nothing but the hooks imports them
    subprocess.run([sys.executable, "-I", "-S", "-c", code, str(hooks_dir)], check=True)


def test_pathlib_imported_after_the_hooks_sees_tracked_files(tmp_path):
    """On 3.10 pathlib keeps os functions of its own (``_NormalAccessor``), patched when the
    program imports it, and restored by ``uninstall``; on 3.11+ it calls os.* at call time."""
    hooks_dir = Path(dvc_stream.hooks.__file__).parent
    code = (
        LOAD
        + f"""
Entry = importlib.import_module("_h.resolver").Entry
root = {str(tmp_path)!r}

class OneFile(Nothing):
    def is_candidate(self, path):
        return path.startswith(root)

    def lookup(self, path):
        return Entry("file", 123, 0.0) if path == os.path.join(root, "tracked.bin") else None

patches.install(OneFile())
assert "pathlib" not in sys.modules
import pathlib

assert pathlib.Path(root, "tracked.bin").stat().st_size == 123
assert not pathlib.Path(root, "other.bin").exists()
patches.uninstall()
accessor = getattr(pathlib, "_NormalAccessor", None)  # 3.10
assert accessor is None or accessor.stat is os.stat, "a hook left in pathlib"
"""
    )
    subprocess.run([sys.executable, "-I", "-S", "-c", code, str(hooks_dir)], check=True)
