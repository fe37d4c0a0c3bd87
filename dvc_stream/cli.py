"""``dvc-stream``: DVC's own CLI with the plugin commands registered explicitly.

For installs where ``dvc_stream.pth`` cannot reach DVC's interpreter; ``dvc-stream stream ...``
behaves as ``dvc stream ...``.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    from dvc_stream._bootstrap import register_commands

    register_commands()
    from dvc.cli import main as dvc_main

    return dvc_main(argv)


if __name__ == "__main__":
    sys.exit(main())
