"""Human-readable byte sizes, as used by ``--prefetch-budget``."""

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``"500M"`` -> 524288000; also ``500MB``, ``2GiB``, ``1024``."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = value, ""
    if value and value[-1] in _UNITS:
        number, unit = value[:-1], value[-1]
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"invalid size '{text}': expected a number with K, M, G or T") from None
    if size < 0:
        raise ValueError(f"invalid size '{text}': must not be negative")
    return int(size)
