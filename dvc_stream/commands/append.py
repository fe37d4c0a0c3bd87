"""``dvc append``: add files to a tracked directory without pulling it."""

import logging

from dvc.cli import completion, formatter
from dvc.cli.command import CmdBase
from dvc.cli.utils import append_doc_link

from dvc_stream.commands.logs import dvc_log_handlers

logger = logging.getLogger(__name__)

APPEND_HELP = "Add files to a tracked directory without pulling it."
APPEND_DESCRIPTION = """\
Add files to a tracked directory without pulling it.

The new files are hashed into the cache and added to the directory's
tree, and its .dvc file is rewritten; the directory's other files are
neither downloaded nor checked. Directories among the sources are added
recursively and keep their layout. Finish with `git commit`."""


class CmdAppend(CmdBase):
    def run(self) -> int:
        from dvc_stream.appending.plan import append

        with dvc_log_handlers():
            append(
                self.args.target,
                self.args.sources,
                repo=self.repo,
                dest=self.args.dest,
                move=self.args.move,
                force=self.args.force,
                push=self.args.push,
                remote=self.args.remote,
                jobs=self.args.jobs,
            )
        return 0


def add_parser(subparsers, parent_parser):
    parser = subparsers.add_parser(
        "append",
        parents=[parent_parser],
        description=append_doc_link(APPEND_DESCRIPTION, "append"),
        help=APPEND_HELP,
        formatter_class=formatter.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", help="Tracked directory, or its .dvc file.", metavar="<tracked-dir>"
    ).complete = completion.DIR
    parser.add_argument(
        "sources", nargs="+", help="Files or directories to add.", metavar="<path>"
    ).complete = completion.FILE
    parser.add_argument(
        "--dest",
        help="Subdirectory of the tracked directory to put the sources in "
        "(default: its top level).",
        metavar="<subdir>",
    )
    parser.add_argument(
        "--move", action="store_true", help="Move the sources instead of copying them."
    )
    parser.add_argument(
        "-f", "--force", action="store_true", help="Replace files that are already tracked."
    )
    parser.add_argument("--push", action="store_true", help="Push the new objects to the remote.")
    parser.add_argument(
        "-r", "--remote", help="Remote storage to push to", metavar="<name>"
    ).complete = completion.REMOTE
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        help="Number of jobs to run simultaneously when pushing.",
        metavar="<number>",
    )
    parser.set_defaults(func=CmdAppend)
