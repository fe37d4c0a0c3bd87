"""The quick-start demo: a DVC repo on a local fake S3 remote, trained on with ``dvc stream``.

``python -m dvc_stream.demo`` builds a dataset of 20 classes x 50 small images, pushes it to a
moto S3 server on 127.0.0.1 (behind a proxy that adds a 20 ms round trip, like a real remote),
makes a fresh clone that has pulled nothing, and runs a training script on three classes under
``dvc stream``. Then it shows what was downloaded and what ``dvc status`` says. Needs the
``tests`` extra (moto).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRAIN_SCRIPT = textwrap.dedent(
    """\
    # An unchanged training script: it lists and reads files as if they had been pulled.
    import hashlib, os, sys

    classes = sys.argv[1:]
    seen = 0
    for name in classes:
        folder = os.path.join("data", "images", name)
        for filename in sorted(os.listdir(folder)):
            with open(os.path.join(folder, filename), "rb") as f:
                hashlib.md5(f.read())
            seen += 1
    print(f"train.py: read {seen} images of classes {', '.join(classes)}")
    """
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="injected round trip")
    parser.add_argument("--keep", action="store_true", help="keep the demo directory")
    args = parser.parse_args(argv)

    from dvc_stream.testing.moto import MotoServer
    from dvc_stream.testing.proxy import LatencyProxy
    from dvc_stream.testing.repos import make_repo

    workdir = Path(tempfile.mkdtemp(prefix="dvc-stream-demo-"))
    with MotoServer() as moto, LatencyProxy(moto.host, moto.port, rtt_ms=args.rtt_ms) as proxy:
        _say(f"moto S3 server on {moto.endpoint_url}, reached through a {args.rtt_ms:g} ms proxy")
        origin = make_repo(workdir / "origin", moto)
        dataset = origin.make_dataset(
            "data/images", nfiles=1000, size=4096, depth=1, fanout=20, push=True
        )
        (origin.root / "train.py").write_text(TRAIN_SCRIPT)
        origin.git("add", "train.py")
        origin.commit("train.py")
        _say(f"pushed {dataset.nfiles} files ({dataset.total_size // 1024} KiB) to the remote")

        clone = origin.clone(workdir / "clone")
        clone.set_endpoint(proxy.endpoint_url)
        _say(f"fresh clone in {clone.root}: data/images is not pulled")
        proxy.reset_counters()
        start = time.perf_counter()
        cmd = ("stream", "--", sys.executable, "train.py", "d0", "d1", "d2")
        result = clone.dvc(*cmd, check=False)
        elapsed = time.perf_counter() - start
        _show("$ dvc stream -- python train.py d0 d1 d2", result.stdout + result.stderr)
        present = sum(1 for p in (clone.root / "data" / "images").rglob("*") if p.is_file())
        _say(
            f"took {elapsed:.1f}s; {proxy.requests} requests, {proxy.bytes_down // 1024} KiB "
            f"downloaded; {present} of {dataset.nfiles} files are now in the workspace"
        )
        status = clone.dvc("status", check=False)
        _show("$ dvc status", status.stdout)
        if result.returncode != 0:
            return result.returncode
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    _say("done")
    return 0


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _show(title: str, output: str) -> None:
    print(f"\n{title}\n{textwrap.indent(output.strip(), '  ')}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
