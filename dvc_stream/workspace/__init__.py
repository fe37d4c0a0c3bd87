"""What is tracked and what is present: the manifest, ``.dir`` trees, placement in the workspace,
and what DVC's own commands see of a partially present output."""
