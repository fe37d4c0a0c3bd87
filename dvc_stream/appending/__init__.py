"""``dvc append``: the sources, the plan and its application, and the push of the new objects."""
