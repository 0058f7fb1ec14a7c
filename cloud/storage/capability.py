"""Whether a store offers an optional capability (a protocol beside the ``Store`` port).

Some store methods are optional: a faster fused query, a commit that need not wait for the disk.
Their callers ask once per store class whether it has them, and fall back to the port's plain
methods otherwise; asking is cached because a runtime protocol check reads every member of the
protocol each time (~20 us, on a sign-in path of ~1 ms).
"""

from __future__ import annotations

from typing import Any

_KNOWN: dict[tuple[type, type], bool] = {}


def implements(store: object, capability: Any) -> bool:
    """``isinstance(store, capability)`` for a ``runtime_checkable`` protocol, once per class."""
    key = (type(store), capability)
    known = _KNOWN.get(key)
    if known is None:
        known = _KNOWN[key] = isinstance(store, capability)
    return known
