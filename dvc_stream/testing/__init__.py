"""Test harness for code built on DVC: a moto S3 server, real repos, a latency/fault proxy.

Also a pytest plugin (``dvc_stream.testing.plugin``); import the helpers from here.
"""

from dvc_stream.testing.cli import dvc_env, run_dvc, run_git
from dvc_stream.testing.moto import MotoServer
from dvc_stream.testing.proxy import Fault, LatencyProxy
from dvc_stream.testing.repos import Dataset, DvcRepo, make_repo

__all__ = [
    "Dataset",
    "DvcRepo",
    "Fault",
    "LatencyProxy",
    "MotoServer",
    "dvc_env",
    "make_repo",
    "run_dvc",
    "run_git",
]
