"""Command plugins for DVC's CLI, registered when DVC's parser is first imported.

DVC builds its parser from a fixed module list, ``dvc.cli.parser.COMMANDS``, and reads no entry
points. This module is imported from ``dvc_stream.pth`` at every interpreter start, so it uses the
standard library only and does no work until ``dvc.cli.parser`` is imported: a one-shot meta path
finder waits for that import, then appends every module declared in the ``dvc.commands``
entry-point group (``name = "package.module"``, a module with ``add_parser``) to ``COMMANDS``,
and calls once every callable declared in the ``dvc.cli_hooks`` group (``name = "module:func"``,
no arguments), e.g. to wrap one of DVC's own commands. Any installed package can declare entry
points in these groups; this mechanism is not specific to dvc-stream.
"""

import sys

ENTRY_POINT_GROUP = "dvc.commands"
HOOK_GROUP = "dvc.cli_hooks"
PARSER_MODULE = "dvc.cli.parser"


class _ParserImportFinder:
    """Stands aside for every import except DVC's parser, then wraps its loader once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PARSER_MODULE:
            return None
        _remove_finder()
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None:
            _run_after_exec(spec.loader, register_commands)
        return spec


def _run_after_exec(loader, callback) -> None:
    exec_module = loader.exec_module

    def exec_then_register(module):
        exec_module(module)
        callback(module)

    loader.exec_module = exec_then_register


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ParserImportFinder)]


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
    for entry_point in found.select(group=HOOK_GROUP):
        try:
            entry_point.load()()
        except Exception as exc:
            _warn(f"failed to run CLI hook '{entry_point.name}' ({entry_point.value}): {exc}")


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
    if PARSER_MODULE in sys.modules:
        register_commands(sys.modules[PARSER_MODULE])
    elif not any(isinstance(f, _ParserImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _ParserImportFinder())


install()
