"""Directories created on the way to a path, remembered so that a rollback or a clean-up removes
exactly those and nothing that was there before."""

from __future__ import annotations

import os
from contextlib import suppress


def make_dirs(path: str) -> list[str]:
    """Create ``path`` and its missing parents; return the created ones, outermost first.

    If one cannot be created, those created before it are removed again."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    created: list[str] = []
    try:
        for directory in reversed(missing):
            os.mkdir(directory)
            created.append(directory)
    except OSError:
        remove_created(created)
        raise
    return created


def remove_created(created: list[str]) -> None:
    """Remove what ``make_dirs`` created, innermost first, where it is empty again."""
    for directory in reversed(created):
        with suppress(OSError):
            os.rmdir(directory)
