"""``dvc stream --mount``: a read-only FUSE view of tracked directories, for readers that bypass
Python (C, C++, shell tools).

Each mounted output shows what ``dvc pull`` would leave there. Files already in the workspace
stay authoritative: they are read through a directory fd taken before mounting. Every other
tracked file is fetched into the cache by the broker on first open (same queue, deduplication,
prefetch and statistics as the hooks) and read from the cache. Nothing is written under a mount
point while it is mounted: the broker defers placing fetched files until every view is unmounted.
"""

from dvc_stream.mount.mounts import mounted, select_outputs
from dvc_stream.mount.system import load_fuse

__all__ = ["load_fuse", "mounted", "select_outputs"]
