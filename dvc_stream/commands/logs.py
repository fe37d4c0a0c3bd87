"""Our log messages, shown by DVC's CLI as it shows its own."""

import logging
from contextlib import contextmanager


@contextmanager
def dvc_log_handlers(name: str = "dvc_stream", floor: int = logging.NOTSET):
    """Show our messages of ``floor`` and above as DVC shows its own ("WARNING: ...")."""
    # NOTE: DVC's CLI configures only the "dvc*" loggers; lend their handlers and level (which
    # -q/-v set) to ours.
    ours, dvcs = logging.getLogger(name), logging.getLogger("dvc")
    handlers, level, propagate = ours.handlers[:], ours.level, ours.propagate
    ours.handlers[:] = dvcs.handlers
    ours.setLevel(max(dvcs.getEffectiveLevel(), floor))
    ours.propagate = False
    try:
        yield
    finally:
        ours.handlers[:] = handlers
        ours.setLevel(level)
        ours.propagate = propagate
