"""Every identifier the graph knows, numbered 0..n-1 (its node), in compact columns.

Millions of identifiers stay in memory, so nothing here is an object per identifier: keys live
in one byte buffer, ranks in a byte array, and the only dict maps the identifier's hash (which is
also its would-be profile id) to its node. That one dict serves both lookups: identifier -> node
and profile id -> node.

An erased identifier (``forget``) leaves its node number behind as a hole: its key bytes are
overwritten with zeros, its rank becomes ``ERASED`` and it is no longer in the index, so nothing
can find it, and the raw value is gone from memory.
"""

from __future__ import annotations

from array import array

from services.identity.domain.identifiers import ID_TYPES_BY_RANK, RANK_OF, Identifier
from services.identity.domain.profile_ids import IdentifierHasher, format_profile_id, parse_profile_id

ERASED = 255
"""The rank of a forgotten node (no identifier type has it)."""


class IdentifierHashCollisionError(RuntimeError):
    """Two identifiers share an 88-bit hash: practically impossible, and never silently merged."""


class IdentifierTable:
    __slots__ = ("_blob", "_ends", "_erased", "_hash", "_index", "_ranks")

    def __init__(self, salt: bytes = b"") -> None:
        self._hash = IdentifierHasher(salt)
        self._index: dict[int, int] = {}
        self._blob = bytearray()  # the UTF-8 keys (``email:anna@example.de``), back to back
        self._ends = array("Q", [0])  # node n's key is _blob[_ends[n]:_ends[n + 1]]
        self._ranks = bytearray()  # IdType.rank per node
        self._erased = 0

    def __len__(self) -> int:
        return len(self._ranks)

    @property
    def live(self) -> int:
        """Identifiers known now (nodes minus the forgotten ones)."""
        return len(self._ranks) - self._erased

    @property
    def ranks(self) -> bytearray:
        """``IdType.rank`` per node (read-only by convention; the graph's hot path indexes it)."""
        return self._ranks

    def _key(self, node: int) -> bytearray:
        return self._blob[self._ends[node] : self._ends[node + 1]]

    def _lookup(self, key: bytes, digest: int) -> int | None:
        node = self._index.get(digest)
        if node is not None and self._blob[self._ends[node] : self._ends[node + 1]] != key:
            raise IdentifierHashCollisionError(f"{key!r} and {self._key(node)!r} share a hash")
        return node

    def node_of(self, identifier: Identifier) -> int | None:
        key = identifier.key.encode()
        return self._lookup(key, self._hash(key))

    def intern(self, identifier: Identifier) -> tuple[int, int, bool]:
        """The identifier's node (added if new), its hash, and whether it was added."""
        key = identifier.key.encode()
        digest = self._hash(key)
        node = self._index.get(digest)  # _lookup inlined: this runs for every identifier of every event
        if node is not None:
            if self._blob[self._ends[node] : self._ends[node + 1]] != key:
                raise IdentifierHashCollisionError(f"{key!r} and {self._key(node)!r} share a hash")
            return node, digest, False
        node = len(self._ranks)
        self._index[digest] = node
        self._blob += key
        self._ends.append(len(self._blob))
        self._ranks.append(RANK_OF[identifier.type])
        return node, digest, True

    def knows_key(self, key: str) -> bool:
        encoded = key.encode()
        return self._lookup(encoded, self._hash(encoded)) is not None

    def key_text(self, node: int) -> str:
        """The node's identifier key (``email:anna@example.de``) without building an Identifier."""
        return self._key(node).decode()

    def is_erased(self, node: int) -> bool:
        return self._ranks[node] == ERASED

    def forget(self, node: int) -> None:
        """Erase the node's identifier: out of the index, its key bytes zeroed (same length, so no
        other node moves). The node number stays allocated and must not be used again."""
        start, end = self._ends[node], self._ends[node + 1]
        del self._index[self._hash(self._blob[start:end])]
        self._blob[start:end] = bytes(end - start)
        self._ranks[node] = ERASED
        self._erased += 1

    def identifier(self, node: int) -> Identifier:
        id_type = ID_TYPES_BY_RANK[self._ranks[node]]
        key = self._key(node).decode()
        return Identifier(id_type, key[len(id_type) + 1 :])

    def precedes(self, node: int, other: int) -> bool:
        """Whether ``node`` ranks before ``other``: better type first, then the key's code points."""
        rank, other_rank = self._ranks[node], self._ranks[other]
        if rank != other_rank:
            return rank < other_rank
        return self._key(node) < self._key(other)  # UTF-8 byte order is code point order

    def sort_key(self, node: int) -> tuple[int, bytearray]:
        return (self._ranks[node], self._key(node))

    def profile_id(self, node: int) -> str:
        return format_profile_id(self._hash(self._key(node)))

    def node_of_profile_id(self, profile_id: str) -> int | None:
        digest = parse_profile_id(profile_id)
        return None if digest is None else self._index.get(digest)
