"""Code that runs inside the user's program: standard library only.

It must import without dvc installed, on any Python from 3.10, because the program may run under
another interpreter than DVC's. It reaches the broker only through ``resolver.Resolver``.
"""
