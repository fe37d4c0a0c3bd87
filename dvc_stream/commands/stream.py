"""``dvc stream``: run a command that sees every tracked file as if it were pulled."""

import argparse
import logging

from dvc.cli import completion, formatter
from dvc.cli.command import CmdBase
from dvc.cli.utils import append_doc_link

logger = logging.getLogger(__name__)

STREAM_HELP = "Run a command with tracked data fetched on first use instead of pulled."
STREAM_DESCRIPTION = """\
Run a command with tracked data fetched on first use instead of pulled.

The command sees every file tracked by the workspace's .dvc files and
dvc.lock as if it had been pulled. A file is downloaded from the remote
into the DVC cache the first time it is opened, then placed in the
workspace as `dvc checkout` would; a prefetcher downloads the files the
command is about to need. Python programs are served through hooks
installed at interpreter start; use --mount for programs that read files
from C or C++.

Exit code: the command's own, or DVC's on a DVC failure."""


class CmdStream(CmdBase):
    def run(self) -> int:
        from dvc_stream.commands.logs import dvc_log_handlers
        from dvc_stream.stream.run import run_streaming

        # NOTE: DVC writes INFO to stdout, which is the command's own: warnings and errors only.
        with dvc_log_handlers(floor=logging.WARNING):
            return run_streaming(
                self.repo,
                self.args.command,
                remote=self.args.remote,
                jobs=self.args.jobs,
                stats_file=self.args.stats,
                prefetch=self.args.prefetch,
                prefetch_budget=self.args.prefetch_budget,
                mount=self.args.mount or bool(self.args.mount_targets),
                mount_targets=self.args.mount_targets,
                quiet=self.args.quiet > 0,
            )


def _size(text: str) -> int:
    from dvc_stream.stream.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(subparsers, parent_parser):
    from dvc_stream.stream.policy import POLICIES

    parser = subparsers.add_parser(
        "stream",
        parents=[parent_parser],
        description=append_doc_link(STREAM_DESCRIPTION, "stream"),
        help=STREAM_HELP,
        formatter_class=formatter.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-r", "--remote", help="Remote storage to fetch from", metavar="<name>"
    ).complete = completion.REMOTE
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        help=(
            "Number of downloads to run simultaneously. "
            "The default value is chosen from the remote's latency, "
            "and is never below that of `dvc pull`."
        ),
        metavar="<number>",
    )
    parser.add_argument(
        "--stats",
        help="Write the end-of-run statistics to this file as JSON.",
        metavar="<path>",
    ).complete = completion.FILE
    parser.add_argument(
        "--prefetch",
        choices=sorted(POLICIES),
        default=None,
        help=(
            "What to download ahead of use (default: auto). "
            + " ".join(f"{name}: {doc}" for name, doc in sorted(POLICIES.items()))
        ),
    )
    parser.add_argument(
        "--prefetch-budget",
        type=_size,
        default=None,
        help="Stop prefetching after this many bytes (e.g. 500M, 2G). Demand fetches go on.",
        metavar="<size>",
    )
    parser.add_argument(
        "--mount",
        action="store_true",
        help="Also mount a read-only FUSE view (needs fuse3) of incomplete tracked directories, "
        "for programs that read files from C or C++.",
    )
    parser.add_argument(
        "--mount-target",
        dest="mount_targets",
        action="append",
        default=None,
        help="Mount only this tracked output (repeatable); implies --mount.",
        metavar="<path>",
    ).complete = completion.DIR
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="Command to run, with its arguments. Use `--` before it if it takes options.",
    )
    parser.set_defaults(func=CmdStream)
