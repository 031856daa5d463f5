"""Profile ids: a keyed hash of the identifier that names the profile, so replays give equal ids.

The id is derived, never drawn at random, so that it is a function of the profile's identifiers
only (see ``graph.py``). It is a keyed hash rather than a plain one because profile ids travel to
Kafka, ClickHouse and BI tools: with a secret salt, nobody who knows an email address can confirm
that it belongs to a given profile id.
"""

from __future__ import annotations

import hashlib

DIGEST_BYTES = 11  # 88 bits: a collision among a billion identifiers has odds of about 1 in 600 million
PREFIX = "p_"
_ID_LENGTH = len(PREFIX) + 2 * DIGEST_BYTES
MAX_SALT_BYTES = hashlib.blake2b.MAX_KEY_SIZE


class IdentifierHasher:
    """The keyed hash of identifier keys. Copying a primed hasher skips re-keying per call."""

    __slots__ = ("_primed",)

    def __init__(self, salt: bytes) -> None:
        if len(salt) > MAX_SALT_BYTES:
            raise ValueError(f"the profile id salt has at most {MAX_SALT_BYTES} bytes")
        self._primed = hashlib.blake2b(digest_size=DIGEST_BYTES, key=salt)

    def __call__(self, key: bytes | bytearray) -> int:
        hasher = self._primed.copy()
        hasher.update(key)
        return int.from_bytes(hasher.digest())


def format_profile_id(digest: int) -> str:
    return f"{PREFIX}{digest:0{2 * DIGEST_BYTES}x}"


def parse_profile_id(profile_id: str) -> int | None:
    """The hash behind a profile id, or None if the text is not shaped like one."""
    if len(profile_id) != _ID_LENGTH or not profile_id.startswith(PREFIX):
        return None
    try:
        digest = int(profile_id[len(PREFIX) :], 16)
    except ValueError:
        return None
    # int() also takes upper case, underscores and signs: only the exact form handed out counts.
    return digest if format_profile_id(digest) == profile_id else None
