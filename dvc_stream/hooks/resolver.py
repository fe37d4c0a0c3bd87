"""What the hooks ask about tracked paths, and the answers they get.

``Resolver`` is implemented twice: by the broker itself when it runs in the same process
(notebooks, ``install_hooks()``), and by ``client.BrokerClient`` over the broker's socket in
processes started by ``dvc stream``. The hooks see only this interface. Every path passed in is
absolute and normalized (``os.path.abspath``).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

FILE = "file"
DIR = "dir"


class Entry(NamedTuple):
    """A tracked path as it would be after ``dvc pull``."""

    type: str  # FILE or DIR
    size: int
    mtime: float
    isexec: bool = False


class Resolver(Protocol):
    def is_candidate(self, path: str) -> bool:
        """Cheap: could ``path`` be a tracked output, inside one, or an ancestor of one?"""

    def lookup(self, path: str) -> Entry | None:
        """The tracked entry at ``path``; None if nothing tracked is there.

        Ancestors of tracked outputs are directories. May cost a metadata request for a file's
        size, which the implementation memoizes.
        """

    def kind(self, path: str) -> str | None:
        """FILE, DIR or None: what ``lookup`` would say of the type, without a file's size."""

    def listdir(self, path: str) -> dict[str, str] | None:
        """Tracked children of the directory ``path``: name -> FILE or DIR; None if untracked."""

    def materialize(self, path: str) -> str:
        """Make the tracked file ``path`` present in the workspace; return the path to open.

        Raises ``FileNotFoundError`` if nothing is tracked there, and ``OSError`` naming the path
        and the remote if the fetch fails.
        """

    def prefetch(self, paths: list[str]) -> None:
        """Hint that these files will be read soon, in this order, after those hinted before."""

    def hints_read_order(self) -> bool:
        """Whether the hooks should hint a PyTorch DataLoader's read order: the policy's say."""
