"""Command plugins for DVC's CLI, and hooks into DVC, run when DVC's modules are first imported.

DVC builds its parser from a fixed module list, ``dvc.cli.parser.COMMANDS``, and reads no entry
points. This module is imported from ``dvc_stream.pth`` at every interpreter start, so it uses the
standard library only and does no work until DVC is imported: a one-shot meta path finder waits
for two imports. When ``dvc.cli.parser`` is imported, it appends every module declared in the
``dvc.commands`` entry-point group (``name = "package.module"``, a module with ``add_parser``) to
``COMMANDS``, and calls once every callable declared in the ``dvc.cli_hooks`` group (``name =
"module:func"``, no arguments), e.g. to wrap one of DVC's own commands. When ``dvc.repo`` is
imported (by the CLI or by a program using DVC's Python API), it calls once every callable of
the ``dvc.repo_hooks`` group, e.g. to patch what a ``Repo`` does. Any installed package can
declare entry points in these groups; this mechanism is not specific to dvc-stream.
"""

import sys

ENTRY_POINT_GROUP = "dvc.commands"
HOOK_GROUP = "dvc.cli_hooks"
REPO_HOOK_GROUP = "dvc.repo_hooks"
PARSER_MODULE = "dvc.cli.parser"
REPO_MODULE = "dvc.repo"


class _DvcImportFinder:
    """Stands aside for every import except the watched ones, then wraps each one's loader once.

    ``waiting`` maps a module name to what runs right after that module has run.
    """

    def __init__(self, waiting):
        self.waiting = waiting

    def find_spec(self, fullname, path=None, target=None):
        callback = self.waiting.pop(fullname, None)
        if callback is None:
            return None
        if not self.waiting:
            _remove_finder()
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None:
            _run_after_exec(spec.loader, callback)
        return spec


def _run_after_exec(loader, callback) -> None:
    exec_module = loader.exec_module

    def exec_then_register(module):
        exec_module(module)
        callback(module)

    loader.exec_module = exec_then_register


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _DvcImportFinder)]


def register_commands(parser_module=None) -> None:
    """Append the ``dvc.commands`` entry points to DVC's command list; safe to call again."""
    _leave_stream_hooks()
    if parser_module is None:
        import dvc.cli.parser as parser_module
    if getattr(parser_module, "_plugin_commands_registered", False):
        return
    parser_module._plugin_commands_registered = True
    from importlib.metadata import entry_points

    # NOTE: one scan of the installed distributions serves both groups.
    found = entry_points()
    commands = parser_module.COMMANDS
    for entry_point in found.select(group=ENTRY_POINT_GROUP):
        try:
            module = entry_point.load()
        except Exception as exc:
            _warn(f"failed to load command '{entry_point.name}' from '{entry_point.value}': {exc}")
            continue
        if module not in commands:
            commands.append(module)
    _run_hooks(found, HOOK_GROUP, "CLI hook")


def run_repo_hooks(repo_module=None) -> None:
    """Call the ``dvc.repo_hooks`` entry points once per interpreter."""
    if repo_module is None:
        import dvc.repo as repo_module
    if getattr(repo_module, "_plugin_hooks_run", False):
        return
    repo_module._plugin_hooks_run = True
    from importlib.metadata import entry_points

    _run_hooks(entry_points(), REPO_HOOK_GROUP, "repo hook")


def _run_hooks(found, group: str, kind: str) -> None:
    for entry_point in found.select(group=group):
        try:
            entry_point.load()()
        except Exception as exc:
            _warn(f"failed to run {kind} '{entry_point.name}' ({entry_point.value}): {exc}")


def _leave_stream_hooks() -> None:
    # NOTE: a `dvc` command run under `dvc stream` must see the real workspace, or it would
    # hash absent files as present; the hooks were loaded under this private name.
    hooks = sys.modules.get("_dvc_stream_hooks.patches")
    if hooks is not None:
        hooks.uninstall()


def _warn(message: str) -> None:
    import logging

    logging.getLogger("dvc").warning("%s", message)
    if not logging.getLogger("dvc").hasHandlers():
        print(f"WARNING: {message}", file=sys.stderr)


def install() -> None:
    """Arm the finder; idempotent, because a ``.pth`` can run twice in one interpreter."""
    waiting = {}
    for name, callback in ((PARSER_MODULE, register_commands), (REPO_MODULE, run_repo_hooks)):
        if name in sys.modules:
            callback(sys.modules[name])
        else:
            waiting[name] = callback
    if waiting and not any(isinstance(f, _DvcImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _DvcImportFinder(waiting))


install()
