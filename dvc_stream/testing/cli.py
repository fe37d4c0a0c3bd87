"""Run the real ``dvc`` and ``git`` CLIs in subprocesses, isolated from the user's config."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

_GITCONFIG = """\
[user]
\tname = dvc-stream tests
\temail = tests@dvc-stream.invalid
[init]
\tdefaultBranch = main
[commit]
\tgpgsign = false
[advice]
\tdetachedHead = false
"""

# NOTE: variables that would let the user's own setup leak into a test run.
_DROPPED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "DVC_ROOT",
)


def make_config_dir(base_dir: str | os.PathLike[str] | None = None) -> Path:
    """Create the empty config dirs and the gitconfig that ``dvc_env`` points to."""
    root = Path(tempfile.mkdtemp(prefix="dvc-stream-env-", dir=base_dir))
    for name in ("dvc-global", "dvc-system"):
        (root / name).mkdir()
    (root / "gitconfig").write_text(_GITCONFIG)
    return root


@functools.cache
def _default_config_dir() -> Path:
    root = make_config_dir()
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def dvc_env(
    base: Mapping[str, str] | None = None,
    *,
    config_dir: str | os.PathLike[str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """An environment for dvc/git subprocesses that ignores every user-level config.

    ``config_dir`` (from ``make_config_dir``) holds the empty DVC config dirs and the gitconfig;
    when omitted, one temp dir per process is used (removed at exit). ``extra`` overrides
    anything, e.g. ``DVC_SITE_CACHE_DIR``.
    """
    env = dict(os.environ if base is None else base)
    for name in _DROPPED:
        env.pop(name, None)
    root = Path(config_dir) if config_dir is not None else _default_config_dir()
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(root / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        DVC_GLOBAL_CONFIG_DIR=str(root / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(root / "dvc-system"),
        DVC_NO_ANALYTICS="1",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(root / "gitconfig"),
        GIT_TERMINAL_PROMPT="0",
    )
    env.update(extra)
    return env


def _run(
    cmd: list[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    check: bool,
    timeout: float | None,
    input: str | None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=dict(env) if env is not None else dvc_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        shown = cmd[2:] if cmd[0] == sys.executable else cmd
        raise AssertionError(
            f"command failed (rc={proc.returncode}): {shown}"
            f"\ncwd: {cwd}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def run_dvc(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dvc *args``; with ``check``, a nonzero rc raises AssertionError.

    ``dvc pull -q`` can fail silently with rc 1, so the rc is always checked by default.
    """
    cmd = [sys.executable, "-m", "dvc", *map(str, args)]
    return _run(cmd, cwd=cwd, env=env, check=check, timeout=timeout, input=input)


def run_git(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args`` with the isolated config; with ``check``, a nonzero rc raises."""
    cmd = ["git", *map(str, args)]
    return _run(cmd, cwd=cwd, env=env, check=check, timeout=timeout, input=None)
