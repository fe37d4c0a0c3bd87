"""Which outputs can be streamed, and for the others, one line saying why and what to do instead.

Every output that ``dvc pull`` fetches by hash can be streamed: from the project's remote, a
cloud-versioned remote, or the source repository of a ``dvc import``. Imports that ``dvc pull``
reads from their source without a usable recorded hash (``reads_source``: made with
``--no-download``, or ``dvc import-url --version-aware``) are first given the hash of their
files there (``Sources.resolve_hash``: ``repo_imports.py``; ``url_imports.py`` for S3 etags,
``url_sources.py`` for a local path or an http(s) URL, hashed with dvc-data), and stream if it
is found and matches what the ``.dvc`` file records; if not, the line says why. Two kinds
cannot:

- ``cache: false``: DVC keeps no copy of the file anywhere, so there is nothing to fetch;
- ``push: false`` (other than ``dvc import-url --version-aware``, which DVC marks so): no remote
  holds it, only the cache of the machine that made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc.output import Output


def reads_source(out: Output) -> bool:
    """Imports that ``dvc pull`` reads from their source, not from a cache or remote by the md5
    the ``.dvc`` file records (``_load_storage_from_import`` in ``dvc/repo/index.py``): made with
    ``--no-download``, or ``dvc import-url --version-aware``."""
    if not out.stage.is_import or out.stage.is_db_import:
        return False
    return not out.hash_info or (not out.stage.is_repo_import and _read_from_url(out))


def unstreamable(out: Output, resolved: bool = False) -> str | None:
    """Why ``out`` cannot be streamed, as one line; None if it can. ``resolved``: an import that
    ``reads_source`` was given the hash of its files at the source (``Sources.resolve_hash``)."""
    stage = out.stage.relpath
    if not out.use_cache:
        return (
            f"'{out}' is not streamed: it has `cache: false` in '{stage}', "
            "so DVC keeps no copy of it to fetch"
        )
    if resolved and out.hash_info:
        return None  # NOTE: `push: false` too: `dvc pull` reads it from its source
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
    """``dvc import-url`` outputs that ``dvc pull`` reads from the URL, not from the remote."""
    return bool(getattr(out.stage.deps[0].fs, "version_aware", False))
