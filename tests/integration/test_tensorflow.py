"""TensorFlow under ``dvc stream --mount``: ``examples/tensorflow/train_keras.py`` and a
``tf.data`` pipeline, on a clone that pulled nothing.

TensorFlow lists and reads files in C++ (``tf.io.gfile``, ``tf.io.read_file``), so the hooks
never see its reads: only the FUSE view serves them. Streamed runs must give what pulled data
gives: the same loss to the last bit (the example is deterministic), the same bytes and pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from .conftest import EXAMPLES, IMAGES, pulled_clone, read_json, run, stream

pytest.importorskip("tensorflow")

pytestmark = pytest.mark.slow

TRAIN_KERAS = EXAMPLES / "tensorflow" / "train_keras.py"
TRAIN = (TRAIN_KERAS, "--data", IMAGES, "--batch-size", "16", "--seed", "3")

# Every file of the folder through tf.data: listed by a C++ glob, read and decoded in C++.
TF_DATA = r"""
import hashlib, json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

root = sys.argv[1]


def load(path):
    data = tf.io.read_file(path)
    pixels = tf.io.decode_png(data, channels=3)
    return path, data, tf.reduce_sum(tf.cast(pixels, tf.int64))


files = tf.data.Dataset.list_files(root + "/*/*.png", shuffle=False)
out = {}
for path, data, total in files.map(load):
    relpath = os.path.relpath(path.numpy().decode(), root)
    out[relpath] = [hashlib.md5(data.numpy()).hexdigest(), len(data.numpy()), int(total)]
print(json.dumps(out))
"""


def _needs_fuse() -> None:
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("--mount needs /dev/fuse and fusermount3")


@pytest.fixture(scope="module")
def pulled(image_repo):
    return pulled_clone(image_repo.origin)


def test_keras_epoch_under_mount_has_the_loss_of_pulled_data(image_repo, pulled, tmp_path):
    _needs_fuse()
    reference = tmp_path / "reference.json"
    run(pulled, sys.executable, *TRAIN, "--report", reference)
    clone = image_repo.fresh_clone()
    report, stats = tmp_path / "report.json", tmp_path / "stats.json"
    options = ("--mount", "--stats", str(stats))
    stream(clone, sys.executable, *TRAIN, "--report", report, options=options)
    got, expected = read_json(report), read_json(reference)
    assert len(expected["files"]) == len(image_repo.files)
    assert got["files"] == expected["files"]
    assert got["loss"] == expected["loss"]
    counts = read_json(stats)
    assert counts["failed_files"] == 0
    assert counts["demand_files"] + counts["prefetched_files"] == len(image_repo.files), counts
    assert clone.tracked_files(IMAGES) == image_repo.origin.tracked_files(IMAGES)


def test_tf_data_pipeline_under_mount_reads_every_file_as_pulled(image_repo, pulled, tmp_path):
    """``--prefetch none``: every file arrives by TensorFlow's own read through the view."""
    _needs_fuse()
    script = tmp_path / "tf_data.py"
    script.write_text(TF_DATA)
    expected = json.loads(run(pulled, sys.executable, script, IMAGES).stdout.splitlines()[-1])
    assert len(expected) == len(image_repo.files)
    clone = image_repo.fresh_clone()
    stats = tmp_path / "stats.json"
    options = ("--mount", "--prefetch", "none", "--stats", str(stats))
    proc = stream(clone, sys.executable, script, IMAGES, options=options)
    assert json.loads(proc.stdout.splitlines()[-1]) == expected
    counts = read_json(stats)
    assert counts["failed_files"] == 0
    assert counts["demand_files"] == len(image_repo.files), counts


def test_keras_without_mount_fails_and_is_told_to_use_mount(image_repo, tmp_path):
    """Under the hooks alone, Keras lists the folder through Python (the hooks answer) and
    TensorFlow then opens the files in C++: they are missing, and ``dvc stream`` says that this
    program needs ``--mount``."""
    clone = image_repo.fresh_clone()
    command = ["stream", "--prefetch", "none", "--", sys.executable, *map(str, TRAIN)]
    proc = clone.dvc(*command, check=False)
    assert proc.returncode != 0
    assert "NotFoundError" in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "`dvc stream --mount`" in line]
    assert len(lines) == 1, proc.stderr
    assert "(tensorflow)" in lines[0]
