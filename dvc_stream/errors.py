"""Errors raised by dvc-stream; each keeps the data it names."""

from dvc.exceptions import DvcException


class DvcStreamError(DvcException):
    """Base class of dvc-stream's errors."""


class ManifestError(DvcStreamError):
    """A tracked output cannot be read, or its ``.dir`` manifest is unsafe."""

    def __init__(self, msg: str, path: str | None = None):
        self.path = path
        super().__init__(msg)


class FetchError(DvcStreamError):
    """An object could not be fetched from its remote."""

    def __init__(self, path: str, remote: str | None, reason: str):
        self.path = path
        self.remote = remote  # None: there is none to fetch from
        self.reason = reason
        where = f" from remote '{remote}'" if remote is not None else ""
        super().__init__(f"failed to fetch '{path}'{where}: {reason}")


class BrokerError(DvcStreamError):
    """The broker could not start or answer."""


class AppendError(DvcStreamError):
    """``dvc append`` refused or failed before changing anything."""


class MountError(DvcStreamError):
    """``--mount`` cannot work here (FUSE missing), was given a bad target, or failed to mount."""


class PartialWorkspaceError(DvcStreamError):
    """A stage would run its command over an output that is only partly in the workspace."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(
            f"'{path}' is only partly in the workspace: run it under `dvc stream`, "
            "or `dvc pull` it first"
        )


class PartialRehashError(DvcStreamError):
    """An output DVC 2 wrote, only partly in the workspace, that DVC would hash again with DVC 3's
    md5 (``dvc cache migrate --dvc-files``): its absent files have no bytes to hash."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(
            f"'{path}' is only partly in the workspace: its absent files cannot be hashed again "
            f"with DVC 3's md5 (it was written by DVC 2); `dvc pull {path}` first"
        )
