"""What the prefetcher may download ahead of use; the ``--prefetch`` choices."""

import os

ENV_POLICY = "DVC_STREAM_PREFETCH"
ENV_BUDGET = "DVC_STREAM_PREFETCH_BUDGET"
DEFAULT_POLICY = "auto"

POLICIES = {
    "none": "only files the program opens, one at a time.",
    "touched": "also the other files of each directory the program reads a file from.",
    "listed": "also every file of each directory the program lists, in listing order.",
    "sampler": "also the files a PyTorch DataLoader will read next, in its sampler's order.",
    "auto": "sampler, and a readahead that grows with the reads of each directory.",
}


def policy_from_env(policy: str | None) -> str:
    chosen = policy or os.environ.get(ENV_POLICY) or DEFAULT_POLICY
    if chosen not in POLICIES:
        from dvc_stream.errors import DvcStreamError

        raise DvcStreamError(
            f"unknown prefetch policy '{chosen}': choose from {', '.join(sorted(POLICIES))}"
        )
    return chosen


def budget_from_env(budget: int | None) -> int | None:
    if budget is not None:
        return budget
    text = os.environ.get(ENV_BUDGET)
    if not text:
        return None
    from dvc_stream.stream.sizes import parse_size

    return parse_size(text)
