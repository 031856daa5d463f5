"""Which nodes form one profile: a union-find forest over node numbers.

One int per node: a member holds its parent, a root holds minus its set's size (the classic
trick that spares a second column). The caller chooses every root (the graph makes it the
best-ranked member), so the root is also the identifier that names the profile. Members are not
listed here: every set is exactly the nodes connected by recorded links, so the graph walks
those when it needs them.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence


class Components:
    __slots__ = ("_parent",)

    def __init__(self) -> None:
        self._parent = array("i")

    def add(self) -> None:
        self._parent.append(-1)

    def find(self, node: int) -> int:
        parent = self._parent
        while (up := parent[node]) >= 0:
            grand = parent[up]
            if grand < 0:
                return up
            # Path halving: every visited node skips to its grandparent, so later finds are short.
            parent[node] = grand
            node = grand
        return node

    def size(self, root: int) -> int:
        return -self._parent[root]

    def join(self, root: int, other_root: int) -> None:
        """Put ``other_root``'s set under ``root`` (both must be roots, of different sets)."""
        parent = self._parent
        parent[root] += parent[other_root]
        parent[other_root] = root

    def regroup(self, root: int, group: Sequence[int]) -> None:
        """Make ``group`` (which contains ``root``) one set of its own, rooted at ``root``."""
        parent = self._parent
        for node in group:
            parent[node] = root
        parent[root] = -len(group)
