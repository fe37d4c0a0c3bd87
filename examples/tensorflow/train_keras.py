"""Train a tiny Keras model for one epoch on a folder of PNG images, one class per subfolder.

An ordinary TensorFlow script: it needs neither DVC nor dvc-stream. TensorFlow lists and reads
the files in C++ (``tf.io.gfile``, ``tf.io.read_file``), where ``dvc stream``'s Python hooks
cannot see them, so on a clone that has not pulled the folder run it with ``--mount``:

    dvc stream --mount python train_keras.py --data data/images --report report.json

It runs on the CPU and is deterministic: the files in a fixed order (``shuffle=False``), seeded
weights, deterministic ops on one thread. The same ``--seed`` gives the same loss, streamed or
pulled. ``report.json`` holds the epoch's loss and the files read.
"""

from __future__ import annotations

import argparse
import json
import os

# NOTE: before TensorFlow is imported, which reads them at load time: quiet C++ logging, and no
# oneDNN kernels (their float sums may round differently from TensorFlow's own).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import tensorflow as tf
from tensorflow import keras


def make_model(classes: int, size: int) -> keras.Model:
    """A small CNN: enough to learn the class marks of ``make_dataset.py``, quick on a CPU."""
    return keras.Sequential(
        [
            keras.Input(shape=(size, size, 3)),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes),
        ]
    )


def train(data: str, *, size: int = 32, batch_size: int = 16, seed: int = 0) -> dict:
    """One epoch over ``data``; returns the loss and the files, relative to ``data``."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    dataset = keras.utils.image_dataset_from_directory(
        data,
        image_size=(size, size),
        batch_size=batch_size,
        shuffle=False,
        seed=seed,
        verbose=False,
    )
    files = [os.path.relpath(path, data) for path in dataset.file_paths]
    model = make_model(len(dataset.class_names), size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    return {"loss": float(history.history["loss"][-1]), "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/images", help="one subfolder per class")
    parser.add_argument("--size", type=int, default=32, help="images are resized to this square")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", help="write the loss and the files read here, as JSON")
    args = parser.parse_args(argv)
    # NOTE: one thread for each kind of parallelism: the same sums in the same order every run.
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    result = train(args.data, size=args.size, batch_size=args.batch_size, seed=args.seed)
    print(f"loss {result['loss']:.6f} over {len(result['files'])} images")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
