"""The ``dvc`` CLI commands added by dvc-stream: argument parsing and wiring only."""
