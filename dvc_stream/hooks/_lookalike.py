"""Replacements that cannot be told from what they replace where the hooks are not needed.

A program that never touches a tracked path must see no difference with the hooks installed. A
replacement function keeps its original's name, module, docstring and (through ``__wrapped__``)
signature; it is never bound as a method when a class holds it, as builtins are not; it pickles
and copies by the name it is installed under; and it is in every ``os.supports_*`` set that its
original is in (``shutil.rmtree`` and ``shutil.copystat`` choose their code path by them). A
replacement class keeps its original's names. Standard library only, like the rest of ``hooks/``.
"""

from __future__ import annotations

import functools
import importlib
import os
import types
from typing import Any

SUPPORTS = ("supports_dir_fd", "supports_effective_ids", "supports_fd", "supports_follow_symlinks")
_NAMES = ("__module__", "__name__", "__qualname__", "__doc__")


class Replacement(staticmethod):
    """A replacement function: callable as is, never bound, pickled as ``module.name``."""

    def __init__(self, function: types.FunctionType, module: str, name: str) -> None:
        super().__init__(function)
        self._home = (module, name)

    def __get__(self, obj: Any, owner: Any = None) -> Replacement:
        return self  # NOTE: as a builtin: ``Class.name is instance.name is the_function``

    def __reduce__(self) -> tuple:
        module, name = self._home
        return (getattr, (_ModuleByName(module), name))

    def __copy__(self) -> Replacement:
        return self

    def __deepcopy__(self, memo: dict) -> Replacement:
        return self


class _ModuleByName:
    """Pickles as ``importlib.import_module(name)``: a module itself cannot be pickled."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple:
        return (importlib.import_module, (self.name,))


def look_alike(replacement: Any, original: Any, module: str, name: str) -> Any:
    """``replacement`` made to look like ``original``, to be installed as ``module.name``."""
    if isinstance(replacement, types.FunctionType) and _is_function(original):
        functools.update_wrapper(replacement, original)
        return Replacement(replacement, module, name)
    if isinstance(replacement, type) and isinstance(original, type):
        for attr in _NAMES:
            setattr(replacement, attr, getattr(original, attr))
    return replacement


def _is_function(obj: Any) -> bool:
    return isinstance(obj, (types.BuiltinFunctionType, types.FunctionType))


def supports_sets(original: Any) -> list[set]:
    """The ``os.supports_*`` sets that hold ``original``."""
    found = []
    for name in SUPPORTS:
        members = getattr(os, name, None)
        if members is not None and _is_function(original) and original in members:
            found.append(members)
    return found
