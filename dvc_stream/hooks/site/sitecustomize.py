"""Installs dvc-stream's hooks at the start of every Python process that ``dvc stream`` runs.

``dvc stream`` puts this directory first on ``PYTHONPATH``, so any interpreter, even one without
dvc installed, imports this module at start-up. It loads the hooks package from the directory in
``DVC_STREAM_HOOKS`` under a private name, connects to the broker in ``DVC_STREAM_SOCKET``, and
installs the hooks; then it runs the ``sitecustomize`` it shadows, if there is one. A failure here
is reported on stderr and never stops the program.
"""

import os
import sys


def _load_hooks(hooks_dir):
    import importlib.util

    name = "_dvc_stream_hooks"
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(hooks_dir, "__init__.py"), submodule_search_locations=[hooks_dir]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(name + ".patches"), importlib.import_module(name + ".client")


def _install_hooks():
    address = os.environ.get("DVC_STREAM_SOCKET")
    hooks_dir = os.environ.get("DVC_STREAM_HOOKS")
    if not address or not hooks_dir:
        return
    try:
        patches, client = _load_hooks(hooks_dir)
        patches.install(client.BrokerClient(address))
    except Exception as exc:
        sys.stderr.write(f"WARNING: dvc stream: hooks not installed in this process: {exc}\n")


def _chain_to_shadowed():
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_install_hooks()
_chain_to_shadowed()
