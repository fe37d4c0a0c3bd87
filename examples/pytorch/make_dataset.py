"""Write a small image-classification dataset: ``<out>/class<k>/img<i>.png``, 32x32 RGB.

Each class has a bright square in its own place over random noise, so a small CNN can learn it.
The same ``--seed`` always writes the same bytes.

    python make_dataset.py data/images --classes 4 --per-class 16
    dvc add data/images && git add data/images.dvc data/.gitignore && dvc push
"""

from __future__ import annotations

import argparse
import os
import random

from PIL import Image, ImageDraw


def make_dataset(
    out: str, *, classes: int = 4, per_class: int = 16, size: int = 32, seed: int = 0
) -> list[str]:
    """Write the PNG files; returns their paths, relative to ``out``."""
    rng = random.Random(seed)
    written = []
    for label in range(classes):
        folder = os.path.join(out, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        for index in range(per_class):
            image = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
            _draw_class_mark(image, label, classes)
            relpath = os.path.join(f"class{label}", f"img{index:04d}.png")
            image.save(os.path.join(out, relpath), format="PNG")
            written.append(relpath)
    return written


def _draw_class_mark(image: Image.Image, label: int, classes: int) -> None:
    width, height = image.size
    step = width // classes
    left = label * step
    ImageDraw.Draw(image).rectangle(
        [left, height // 4, left + step - 1, 3 * height // 4], fill=(255, 255, 255)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="directory to write (e.g. data/images)")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="width and height in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = make_dataset(
        args.out, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed
    )
    print(f"wrote {len(files)} images to {args.out}")


if __name__ == "__main__":
    main()
