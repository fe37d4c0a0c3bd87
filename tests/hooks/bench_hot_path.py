"""Hot-path cost of the hooks on untracked paths (a measurement, not a test).

Run: PYTHONPATH=. python tests/hooks/bench_hot_path.py [iterations]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import timeit

from dvc_stream.hooks import patches


class NoTracked:
    def is_candidate(self, path: str) -> bool:
        return path == "/tracked" or path.startswith("/tracked/")

    def lookup(self, path):
        return None

    def listdir(self, path):
        return None

    def materialize(self, path):
        raise FileNotFoundError(path)

    def prefetch(self, paths):
        pass


def _cases(base: str) -> dict[str, str]:
    small = os.path.join(base, "small.txt")
    return {
        "open+read (abs)": f"with open({small!r}, 'rb') as f: f.read()",
        "os.stat (abs)": f"os.stat({small!r})",
        "os.stat (rel)": "os.stat('small.txt')",
        "os.listdir (abs)": f"os.listdir({base!r})",
        "os.listdir (rel)": "os.listdir('.')",
        "os.path.exists (abs)": f"os.path.exists({small!r})",
    }


def _compare(stmt: str, number: int, rounds: int = 11) -> tuple[float, float]:
    """Best CPU time per call, plain and hooked, measured in alternation to share the noise."""
    # NOTE: thread CPU time, not wall time: on a loaded machine, time spent descheduled
    # would otherwise swamp differences of a few percent.
    timer = timeit.Timer(stmt, timer=time.thread_time, globals={"os": os})
    plain, hooked = [], []
    for _ in range(rounds):
        plain.append(timer.timeit(number))
        patches.install(NoTracked())
        try:
            hooked.append(timer.timeit(number))
        finally:
            patches.uninstall()
    return min(plain) / number, min(hooked) / number


def main(number: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as base:
        with open(os.path.join(base, "small.txt"), "wb") as f:
            f.write(b"x" * 100)
        for i in range(10):
            open(os.path.join(base, f"f{i}"), "w").close()
        os.chdir(base)
        print(
            f"Python {sys.version.split()[0]}, {number} iterations,"
            " best of 11 alternating rounds, thread CPU time"
        )
        for name, stmt in _cases(base).items():
            plain, hooked = _compare(stmt, number)
            print(
                f"{name:22} plain {plain * 1e9:6.0f} ns  hooked {hooked * 1e9:6.0f} ns"
                f"  +{(hooked - plain) * 1e9:4.0f} ns  ratio {hooked / plain:.3f}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
