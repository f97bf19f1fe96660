"""Independent, reproducible sub-seeds: one run seed fans out into one seed per purpose (init, data order, ...)."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, salt: str) -> int:
    """A 31-bit seed for ``salt``'s purpose under run seed ``seed``: stable across processes and machines."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:4], "little") & 0x7FFFFFFF
