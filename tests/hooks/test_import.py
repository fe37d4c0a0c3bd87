"""The hooks package imports and installs alone, with the standard library only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dvc_stream.hooks

CODE = """
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
new = {name.split(".")[0] for name in set(sys.modules) - before} - {"_h"}
foreign = sorted(name for name in new if name not in sys.stdlib_module_names)
assert not foreign, foreign

class Nothing:
    def is_candidate(self, path):
        return False

stat = os.stat
patches.install(Nothing())
assert os.stat is not stat and os.listdir(hooks_dir)
patches.uninstall()
assert os.stat is stat
"""


def test_hooks_import_and_install_with_stdlib_only():
    hooks_dir = Path(dvc_stream.hooks.__file__).parent
    # -I: no PYTHONPATH, no site-packages, so no dvc
    subprocess.run([sys.executable, "-I", "-c", CODE, str(hooks_dir)], check=True)
