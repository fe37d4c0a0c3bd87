"""nox sessions: tests on every installed Python, lint, benchmarks, real workloads, the demo."""

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

# NOTE: pyenv's shims fail for versions that are installed but not selected; put each
# installed version's own bin directory on PATH so that nox finds `python3.X` directly.
_PYENV_ROOT = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
os.environ["PATH"] = os.pathsep.join(
    [*sorted(glob.glob(os.path.join(_PYENV_ROOT, "versions", "3.*", "bin"))), os.environ["PATH"]]
)


def _runs(version: str) -> bool:
    exe = shutil.which(f"python{version}")
    return bool(exe) and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0


INSTALLED = [v for v in PYTHONS if _runs(v)] or None


@nox.session(python=INSTALLED)
def tests(session: nox.Session) -> None:
    """The default test run (hooks, stream, append, harness) on each installed Python."""
    session.install("-e", ".[tests]")
    session.run("pytest", *session.posargs)


@nox.session(python=INSTALLED)
def hooks(session: nox.Session) -> None:
    """The hooks alone, in an environment without dvc: they must not need it."""
    session.install("pytest", "pytest-timeout")
    session.run(
        "pytest",
        "tests/hooks",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--confcutdir=tests/hooks",
        *session.posargs,
        env={"PYTHONPATH": "."},
    )


# NOTE: dvc is installed here only, for `dvc stream`: the interpreters under test run the hooks
# without it, from the directory `dvc stream` puts on their path, as users' programs do.
@nox.session
def cpython(session: nox.Session) -> None:
    """CPython's own suites (os, pathlib, io, shutil...) on each installed Python: the same
    results with the hooks as without them."""
    session.install("-e", ".[tests]")
    session.run("python", "tests/hooks/cpython_suites.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# NOTE: 3.11 with the integration extra, for torch: the `-torch` modes train through a real
# DataLoader (see the note on `integration` below). The run fails if summary.json lacks a
# first-epoch row or its ratio to pull (benchmarks/conftest.py).
@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite: ``-- --smoke`` (tiny data, every case once, a minute or two),
    ``-- --quick`` (reduced data, under 8 minutes), or the full suite (about 70 minutes)."""
    session.install("-e", ".[tests,integration]")
    session.run(
        "pytest",
        "benchmarks",
        "--benchmark-only",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


# NOTE: one Python only: the torch 2.13.0 CPU wheel on these machines is built for 3.11, and
# any other version would download a CUDA build of several GB.
@nox.session(python="3.11")
def integration(session: nox.Session) -> None:
    """Real workloads: DataLoader workers, torchrun, a Jupyter kernel, Keras and tf.data under
    --mount, third-party readers."""
    session.install("-e", ".[tests,integration]")
    session.run("pytest", "tests/integration", "-n", "0", *session.posargs)


@nox.session
def reliability(session: nox.Session) -> None:
    """The long and heavy reliability runs: the full soak, the repeated fault matrix, the
    stateful runs of the partial workspace, concurrent first runs (the rest of these files is in
    the default run; CI runs the heavy ones too)."""
    session.install("-e", ".[tests]")
    session.run("pytest", "-m", "long or heavy", "-s", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quick-start demo: a moto S3 remote, a fresh clone, `dvc stream` on it."""
    session.install("-e", ".[tests]")
    session.run("python", "-m", "dvc_stream.demo", *session.posargs)
