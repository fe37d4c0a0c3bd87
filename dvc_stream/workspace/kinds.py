"""Which outputs can be streamed, and for the others, one line saying why and what to do instead.

Every output that ``dvc pull`` fetches by hash can be streamed: from the project's remote, a
cloud-versioned remote, or the source repository of a ``dvc import`` (also one made with
``--no-download``: its hash is found in the source at ``rev_lock`` before this is asked,
``Sources.resolve_hash``). Three kinds cannot:

- ``cache: false``: DVC keeps no copy of the file anywhere, so there is nothing to fetch;
- ``push: false``: no remote holds it, only the cache of the machine that made it;
- ``dvc import-url`` outputs made with ``--no-download`` or ``--version-aware``, which
  ``dvc pull`` reads from their URL: no md5 of their files is recorded where a clone can read it
  (the ``.dir`` object stays in the importing machine's cache), so a fetched file could not be
  checked before the program reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc.output import Output


def unstreamable(out: Output) -> str | None:
    """Why ``out`` cannot be streamed, as one line; None if it can."""
    stage = out.stage.relpath
    if not out.use_cache:
        return (
            f"'{out}' is not streamed: it has `cache: false` in '{stage}', "
            "so DVC keeps no copy of it to fetch"
        )
    if out.stage.is_import and not out.hash_info:
        return (
            f"'{out}' is not streamed: it was imported with --no-download, so no hash of it is "
            f"recorded yet; run `dvc pull {out}` instead"
        )
    if out.stage.is_import and not out.stage.is_repo_import and _read_from_url(out):
        dep = out.stage.deps[0]
        return (
            f"'{out}' is not streamed: `dvc pull` reads it from '{dep.def_path}', which records "
            f"no md5 hashes to check its files against; run `dvc pull {out}` instead"
        )
    if not out.can_push:
        return (
            f"'{out}' is not streamed: it has `push: false` in '{stage}', so no remote holds "
            f"it; `dvc checkout {out}` places it if the cache has it"
        )
    return None


def _read_from_url(out: Output) -> bool:
    """``dvc import-url`` outputs that ``dvc pull`` reads from the URL, not from the remote
    (``_load_storage_from_import`` in ``dvc/repo/index.py``)."""
    return bool(getattr(out.stage.deps[0].fs, "version_aware", False))
