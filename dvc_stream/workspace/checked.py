"""The version each output's present files were last found to hold, whoever placed them.

The partial-workspace record (``record.py``) knows the version of the outputs dvc-stream placed
files into, but not of an output ``dvc pull`` filled, nor of one dvc-stream completed and
released. This file remembers, per output, the tracked version its present files were last
checked against and DVC's own link entry for the output then (``repo.state.links``: an inode and
an mtime token that ``dvc checkout`` rewrites whenever it changes the output). While both still
hold, the files cannot have changed version, and a run need not look at them.

It lives in ``.dvc/tmp/stream-checked.json`` and is written only under the record's lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dvc_stream.workspace import record

CHECKED = "stream-checked.json"
FORMAT = record.FORMAT


@dataclass(frozen=True)
class Checked:
    """One output's present files, checked against ``oid`` while DVC's link entry was ``link``."""

    oid: str
    link: list | None


def load(tmp_dir: str) -> dict[str, Checked]:
    """Output relpath (posix) -> what it was last checked against; empty if unknown."""
    try:
        with open(os.path.join(tmp_dir, CHECKED), encoding="utf-8") as fobj:
            data = json.load(fobj)
        if data.get("format") != FORMAT:
            return {}
        return {path: Checked(i["oid"], i["link"]) for path, i in data["outputs"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save(tmp_dir: str, checked: dict[str, Checked]) -> None:
    """Replace the file atomically; the caller holds ``record.editing``."""
    outputs = {k: {"oid": v.oid, "link": v.link} for k, v in sorted(checked.items())}
    record.write_outputs(os.path.join(tmp_dir, CHECKED), outputs)
