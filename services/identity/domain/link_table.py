"""The recorded links: the source of truth from which every profile can be recomputed.

Columns of ints, not objects: link ``l`` joins nodes ``a[l]`` and ``b[l]`` and points at its
provenance. Each node's links form a chain threaded through ``next_a``/``next_b`` (an adjacency
list without a list object per node). A removed link leaves a tombstone (``a == -1``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

_NONE = -1


class LinkTable:
    __slots__ = ("_a", "_alive", "_b", "_head", "_next_a", "_next_b", "_provenance")

    def __init__(self) -> None:
        self._a = array("i")
        self._b = array("i")
        self._provenance = array("i")
        self._next_a = array("i")
        self._next_b = array("i")
        self._head = array("i")  # per node: its most recent link, or -1
        self._alive = 0

    def __len__(self) -> int:
        return self._alive

    def add_node(self) -> None:
        self._head.append(_NONE)

    def add(self, a: int, b: int, provenance: int) -> int:
        link = len(self._a)
        head = self._head
        self._a.append(a)
        self._b.append(b)
        self._provenance.append(provenance)
        self._next_a.append(head[a])
        self._next_b.append(head[b])
        head[a] = head[b] = link
        self._alive += 1
        return link

    def ends(self, link: int) -> tuple[int, int]:
        return self._a[link], self._b[link]

    def provenance(self, link: int) -> int:
        return self._provenance[link]

    def _next(self, link: int, node: int) -> int:
        return self._next_a[link] if self._a[link] == node else self._next_b[link]

    def links_of(self, node: int) -> Iterator[int]:
        link = self._head[node]
        while link != _NONE:
            yield link
            link = self._next(link, node)

    def neighbours(self, node: int) -> Iterator[int]:
        a, b = self._a, self._b
        for link in self.links_of(node):
            yield b[link] if a[link] == node else a[link]

    def connected(self, start: int) -> list[int]:
        """``start`` and every node reachable from it over links, in breadth-first order."""
        seen = {start}
        reached = [start]
        for node in reached:  # grows while iterated
            for neighbour in self.neighbours(node):
                if neighbour not in seen:
                    seen.add(neighbour)
                    reached.append(neighbour)
        return reached

    def between(self, node: int, other: int) -> int | None:
        """The link joining the two nodes, if recorded (walks ``node``'s chain: pass the rarer one)."""
        a, b = self._a, self._b
        for link in self.links_of(node):
            if a[link] == other or b[link] == other:
                return link
        return None

    def remove(self, link: int) -> None:
        for node in (self._a[link], self._b[link]):
            self._unthread(link, node)
        self._a[link] = self._b[link] = _NONE
        self._alive -= 1

    def _unthread(self, link: int, node: int) -> None:
        after = self._next(link, node)
        if self._head[node] == link:
            self._head[node] = after
            return
        previous = self._head[node]
        while (following := self._next(previous, node)) != link:
            previous = following
        if self._a[previous] == node:
            self._next_a[previous] = after
        else:
            self._next_b[previous] = after

    def live(self) -> Iterator[int]:
        """Every recorded link, oldest first."""
        return (link for link, a in enumerate(self._a) if a != _NONE)
