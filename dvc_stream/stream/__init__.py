"""The broker and what stands behind it: its socket server, the fetcher, the cache adder, the
prefetcher and its policy, remotes, object sizes, the stall watchdog, statistics, and the run."""
