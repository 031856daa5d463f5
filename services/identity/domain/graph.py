"""The identity graph: identifiers seen together are linked; connected identifiers are one profile.

Rules that make the outcome explainable and independent of arrival order:

* **Profile id** = ``p_`` + keyed hash of the profile's *best-ranked* identifier (rank: customer id,
  email, phone, recipient id, chat handle, anonymous id; ties by value). That identifier is kept
  as the union-find root, so the id is a function of the profile's identifiers alone: the same
  links in any order give the same grouping *and* the same ids (unless a safeguard refused a link,
  which can depend on order by nature).
* **Merge**: the profile whose best identifier ranks first survives; the other id is absorbed and
  keeps resolving (``resolve``) to wherever its identifier lives now. No redirect table is needed:
  an absorbed id names an identifier, and the identifier's profile is always known.
* **Links** are recorded as a star from the event's best-ranked identifier (its *anchor*) to each
  other identifier, with the event's provenance; a pair keeps its first provenance. An event
  resolves to the anchor's profile, also when some of its links were refused.
* **Safeguards** (refused links are returned, never applied): an identifier an operator detached
  links nothing; a pair an operator split is not linked again; two profiles that each hold a
  customer id are never merged; a merge must keep every type within ``LinkLimits``.
* **Split** removes a link and recomputes the profile from the remaining links: the part holding
  the profile's best identifier keeps the id, every other part is named by its own best
  identifier (often reviving the id it had before the merge).
* **Erase** (GDPR Art. 17) forgets a person: every identifier and link of their profiles, and any
  identifier of theirs linked elsewhere (that profile is regrouped without it, like a detach).
  Erased identifiers leave no trace: their keys are zeroed in memory and no id resolves to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from services.identity.domain.components import Components
from services.identity.domain.identifier_table import IdentifierTable
from services.identity.domain.identifiers import ID_TYPES_BY_RANK, Identifier, IdType
from services.identity.domain.limits import LinkLimits
from services.identity.domain.link_table import LinkTable
from services.identity.domain.outcomes import (
    EraseResult,
    GraphStats,
    Link,
    Merge,
    ObserveResult,
    RefusalReason,
    RefusedLink,
    SplitResult,
    SplitStatus,
)
from services.identity.domain.profile_ids import format_profile_id
from services.identity.domain.provenance import LinkRule, Provenance
from services.identity.domain.provenance_log import ProvenanceLog
from services.identity.domain.snapshot import GraphSnapshot, LinkRow

_CUSTOMER_ID_RANK = IdType.CUSTOMER_ID.rank
# Over the customer-id limit (always 1) is the conflict rule by another name.
_LIMIT_REASONS = tuple(
    RefusalReason.CUSTOMER_ID_CONFLICT if t is IdType.CUSTOMER_ID else RefusalReason.limit(t)
    for t in ID_TYPES_BY_RANK
)
_NO_IDENTIFIER = ObserveResult(profile_id=None)


class _NodesByKey(dict[str, int]):
    def __missing__(self, key: str) -> int:
        raise ValueError(f"snapshot inconsistent: a row names an identifier it does not list: {key}")


def _pair(node: int, other: int) -> tuple[int, int]:
    return (node, other) if node < other else (other, node)


class IdentityGraph:
    """Identifiers, links and profiles of one shop (pure, single-threaded, in memory).

    Internally every identifier is a *node* number; the public API speaks ``Identifier`` and
    profile ids only. Feed it identifiers from ``identifiers_of``/``normalise_identifier``: it
    links what it is given and does not normalise again.
    """

    def __init__(self, limits: LinkLimits | None = None, *, profile_id_salt: bytes = b"") -> None:
        self.limits = limits or LinkLimits()
        self._limits_by_rank = self.limits.by_rank()
        # Customer ids are guarded by the conflict rule: with it, a merge never holds two.
        self._smallest_limit = min(
            limit for rank, limit in enumerate(self._limits_by_rank) if rank != _CUSTOMER_ID_RANK
        )
        self._ids = IdentifierTable(profile_id_salt)
        self._ranks = self._ids.ranks
        self._sets = Components()
        self._links = LinkTable()
        self._provenance = ProvenanceLog()
        self._issued = bytearray()  # 1 if the node's id has named a profile (so it must resolve)
        self._forbidden: dict[tuple[int, int], str] = {}
        self._detached: dict[int, str] = {}
        self._profiles = 0

    # -- events ---------------------------------------------------------------------------------

    def observe(self, identifiers: Sequence[Identifier], provenance: Provenance) -> ObserveResult:
        """Add the event's identifiers and link them (a star from the best-ranked one).

        The event resolves to the profile of its best-ranked identifier (its customer id if any),
        also when some of its links were refused.
        """
        given: dict[int, tuple[Identifier, int]] = {}  # node -> (identifier, its hash)
        new: list[Identifier] = []
        intern = self._ids.intern
        for identifier in identifiers:
            node, digest, is_new = intern(identifier)
            if is_new:
                self._add_node()
                new.append(identifier)
            given[node] = (identifier, digest)
        if not given:
            return _NO_IDENTIFIER
        nodes = list(given)
        if len(nodes) > 1:
            self._sort(nodes)

        find, links = self._sets.find, self._links
        anchor = nodes[0]
        anchor_identifier = given[anchor][0]
        provenance_row = -1
        new_links: list[Link] = []
        refused: list[RefusedLink] = []
        absorbed: list[tuple[int, Link]] = []
        for other in nodes[1:]:
            root, other_root = find(anchor), find(other)
            if root == other_root and links.between(other, anchor) is not None:
                continue  # already recorded: the event that first linked the pair stays its provenance
            reason = self._refusal(anchor, other, root, other_root)
            if reason is not None:
                refused.append(
                    RefusedLink(
                        anchor_identifier, given[other][0], reason, provenance,
                        self._ids.profile_id(root), self._ids.profile_id(other_root),
                    )
                )  # fmt: skip
                continue
            if provenance_row < 0:
                provenance_row = self._provenance.append(provenance)
            links.add(anchor, other, provenance_row)
            link = Link(anchor_identifier, given[other][0], provenance)
            new_links.append(link)
            if root != other_root:
                absorbed.append((self._join(root, other_root), link))

        final_root = find(anchor)
        known = given.get(final_root)  # the root's hash if it was on the event: no need to rehash
        profile_id = format_profile_id(known[1]) if known is not None else self._ids.profile_id(final_root)
        if not (new or new_links or refused):
            return ObserveResult(profile_id)
        issued = self._issued
        merges = tuple(
            Merge(profile_id, self._ids.profile_id(root), link) for root, link in absorbed if issued[root]
        )
        # Every current profile id has been handed out: the event's result (or a refused newcomer's
        # own profile) is where its id first appears.
        for node in nodes:
            issued[find(node)] = 1
        return ObserveResult(profile_id, tuple(new), tuple(new_links), merges, tuple(refused))

    def _sort(self, nodes: list[int]) -> None:
        """Best-ranked first. Types usually differ; only equal types need their keys compared."""
        ranks = self._ranks
        nodes.sort(key=ranks.__getitem__)
        if len({ranks[node] for node in nodes}) < len(nodes):
            nodes.sort(key=self._ids.sort_key)

    def _add_node(self) -> None:
        """Room for a node just added to the identifier table: alone, it is a profile of its own."""
        self._sets.add()
        self._links.add_node()
        self._issued.append(0)
        self._profiles += 1

    def _refusal(self, anchor: int, other: int, root: int, other_root: int) -> RefusalReason | None:
        # Operator decisions first: they are the explicit correction of an earlier wrong merge.
        if self._detached and (anchor in self._detached or other in self._detached):
            return RefusalReason.DETACHED_BY_OPERATOR
        if self._forbidden and _pair(anchor, other) in self._forbidden:
            return RefusalReason.SPLIT_BY_OPERATOR
        return None if root == other_root else self._merge_refusal(root, other_root)

    def _merge_refusal(self, root: int, other_root: int) -> RefusalReason | None:
        ranks = self._ranks
        # A root is its profile's best identifier, so a profile holds a customer id iff its root is one.
        if ranks[root] == _CUSTOMER_ID_RANK and ranks[other_root] == _CUSTOMER_ID_RANK:
            return RefusalReason.CUSTOMER_ID_CONFLICT
        if self._sets.size(root) + self._sets.size(other_root) <= self._smallest_limit:
            return None  # too few members to exceed any limit: skip counting them
        counts = [0] * len(ID_TYPES_BY_RANK)
        for start in (root, other_root):
            for node in self._links.connected(start):
                counts[ranks[node]] += 1
        for rank, count in enumerate(counts):
            if count > self._limits_by_rank[rank]:
                return _LIMIT_REASONS[rank]
        return None

    def _join(self, root: int, other_root: int) -> int:
        """Merge two profiles; the one whose root ranks first survives. Returns the absorbed root."""
        if self._ids.precedes(other_root, root):
            root, other_root = other_root, root
        self._sets.join(root, other_root)
        self._profiles -= 1
        return other_root

    # -- operator corrections -------------------------------------------------------------------

    def split(self, a: Identifier, b: Identifier, reason: str = "") -> SplitResult:
        """Remove the recorded link between ``a`` and ``b`` and recompute their profile.

        The pair is remembered as forbidden: replaying the event that linked it (or any other event
        carrying both) is refused with ``split_by_operator`` instead of undoing the correction.
        """
        node, other = self._ids.node_of(a), self._ids.node_of(b)
        link = None if node is None or other is None else self._links.between(node, other)
        if node is None or other is None or link is None:
            return SplitResult(SplitStatus.NOT_LINKED, self.profile_of(a))
        root = self._sets.find(node)
        members = self._links.connected(root)
        removed = (self._link(link),)
        self._links.remove(link)
        self._forbidden[_pair(node, other)] = reason
        return self._recompute(root, members, removed)

    def detach(self, identifier: Identifier, reason: str = "") -> SplitResult:
        """Cut every link of ``identifier`` and let it link nothing from now on (a shared device)."""
        node = self._ids.node_of(identifier)
        if node is None:
            return SplitResult(SplitStatus.NOT_LINKED, None)
        root = self._sets.find(node)
        self._detached[node] = reason
        links = list(self._links.links_of(node))
        if not links:
            profile_id = self._ids.profile_id(root)
            return SplitResult(SplitStatus.NOT_LINKED, profile_id, (profile_id,))
        members = self._links.connected(root)
        removed = tuple(self._link(link) for link in sorted(links))
        for link in links:
            self._links.remove(link)
        return self._recompute(root, members, removed)

    def _recompute(self, root: int, members: list[int], removed: tuple[Link, ...]) -> SplitResult:
        """Regroup a profile's former ``members`` by the links that remain."""
        profile_id = self._ids.profile_id(root)
        groups = self._connected_groups(members)
        if len(groups) == 1:
            return SplitResult(SplitStatus.STILL_CONNECTED, profile_id, (profile_id,), removed)
        roots = []
        for group in groups:
            group_root = min(group, key=self._ids.sort_key)
            self._sets.regroup(group_root, group)
            self._issued[group_root] = 1
            roots.append(group_root)
        self._profiles += len(groups) - 1
        # ``root`` was the best of all, so it is still a root: its part keeps the id and comes first.
        roots.sort(key=self._ids.sort_key)
        return SplitResult(SplitStatus.SPLIT, profile_id, tuple(map(self._ids.profile_id, roots)), removed)

    def _connected_groups(self, members: list[int]) -> list[list[int]]:
        seen: set[int] = set()
        groups: list[list[int]] = []
        for start in members:
            if start not in seen:
                group = self._links.connected(start)
                seen.update(group)
                groups.append(group)
        return groups

    # -- erasure --------------------------------------------------------------------------------

    def erase(
        self, profile_ids: Iterable[str], suppressed: Callable[[str], bool] | None = None
    ) -> EraseResult:
        """Forget a person (GDPR Art. 17): every identifier and link of the profiles ``profile_ids``
        name, each resolved to its current profile first (an absorbed id or a former split part
        counts), and every identifier whose key ``suppressed(key)`` accepts wherever it is linked.

        A profile of someone else that held a suppressed identifier loses it and is regrouped from
        its remaining links (``regrouped``, like a detach). Forgotten identifiers are no longer
        known: an event naming one again starts afresh. Checking ``suppressed`` visits every
        identifier the graph knows (erasures are rare; about a second per million identifiers).
        """
        ids, find = self._ids, self._sets.find
        roots = {root for pid in profile_ids if (root := self._root_of(pid)) is not None}
        lone: dict[int, list[int]] = {}  # root of another profile -> its suppressed identifiers
        if suppressed is not None:
            for node in range(len(ids)):
                if not ids.is_erased(node) and suppressed(ids.key_text(node)):
                    root = find(node)
                    if root not in roots:
                        lone.setdefault(root, []).append(node)
        erased: set[str] = set()
        identifiers = links = 0
        for root in sorted(roots, key=ids.sort_key):
            members = self._links.connected(root)
            erased.update(self._issued_ids(members))
            links += self._forget(members)
            identifiers += len(members)
            self._profiles -= 1
        regrouped: list[SplitResult] = []
        for root in sorted(lone, key=ids.sort_key):
            gone = set(lone[root])
            members = self._links.connected(root)
            old_id = ids.profile_id(root)
            erased.update(self._issued_ids(gone))
            links += self._forget(list(gone))
            identifiers += len(gone)
            rest = [node for node in members if node not in gone]
            if not rest:
                self._profiles -= 1
                continue
            part_roots = []
            groups = self._connected_groups(rest)
            for group in groups:
                group_root = min(group, key=ids.sort_key)
                self._sets.regroup(group_root, group)
                self._issued[group_root] = 1
                part_roots.append(group_root)
            self._profiles += len(groups) - 1
            part_roots.sort(key=ids.sort_key)
            parts = tuple(map(ids.profile_id, part_roots))
            regrouped.append(SplitResult(SplitStatus.SPLIT, parts[0] if root in gone else old_id, parts))
        return EraseResult(tuple(sorted(erased)), tuple(regrouped), identifiers, links)

    def _issued_ids(self, nodes: Iterable[int]) -> list[str]:
        """The profile ids ``nodes`` have handed out (current and absorbed ones)."""
        issued, profile_id = self._issued, self._ids.profile_id
        return [profile_id(node) for node in nodes if issued[node]]

    def _forget(self, nodes: list[int]) -> int:
        """Remove ``nodes`` with every link they have; returns how many links went."""
        links = {link for node in nodes for link in self._links.links_of(node)}
        for link in links:
            self._links.remove(link)
        for node in nodes:
            self._ids.forget(node)
            self._issued[node] = 0
            self._detached.pop(node, None)
            self._sets.regroup(node, (node,))
        if self._forbidden:
            gone = set(nodes)
            for pair in [pair for pair in self._forbidden if pair[0] in gone or pair[1] in gone]:
                del self._forbidden[pair]
        return len(links)

    def knows(self, key: str) -> bool:
        """Whether the graph holds the identifier with this key (``email:anna@example.de``)."""
        return self._ids.knows_key(key)

    # -- queries --------------------------------------------------------------------------------

    def profile_of(self, identifier: Identifier) -> str | None:
        node = self._ids.node_of(identifier)
        return None if node is None else self._ids.profile_id(self._sets.find(node))

    def resolve(self, profile_id: str) -> str | None:
        """The current id of a profile id ever handed out (itself, or the profile that absorbed it)."""
        root = self._root_of(profile_id)
        return None if root is None else self._ids.profile_id(root)

    def _root_of(self, profile_id: str) -> int | None:
        node = self._ids.node_of_profile_id(profile_id)
        if node is None or not self._issued[node]:
            return None
        return self._sets.find(node)

    def identifiers_of_profile(self, profile_id: str) -> tuple[Identifier, ...]:
        """The profile's identifiers, best-ranked first (empty for an unknown id)."""
        root = self._root_of(profile_id)
        if root is None:
            return ()
        return tuple(
            self._ids.identifier(n) for n in sorted(self._links.connected(root), key=self._ids.sort_key)
        )

    def links_of_profile(self, profile_id: str) -> tuple[Link, ...]:
        """The recorded links that hold the profile together, oldest first."""
        root = self._root_of(profile_id)
        if root is None:
            return ()
        links = {link for node in self._links.connected(root) for link in self._links.links_of(node)}
        return tuple(self._link(link) for link in sorted(links))

    def absorbed_profile_ids(self, profile_id: str) -> tuple[str, ...]:
        """Ids of the profiles merged into this one that still redirect to it."""
        root = self._root_of(profile_id)
        if root is None:
            return ()
        nodes = sorted(
            (n for n in self._links.connected(root) if self._issued[n] and n != root), key=self._ids.sort_key
        )
        return tuple(map(self._ids.profile_id, nodes))

    def profile_count(self) -> int:
        return self._profiles

    def stats(self) -> GraphStats:
        return GraphStats(
            identifiers=self._ids.live,
            profiles=self._profiles,
            links=len(self._links),
            forbidden_pairs=len(self._forbidden),
            detached=len(self._detached),
        )

    def _link(self, link: int) -> Link:
        a, b = self._links.ends(link)
        return Link(
            self._ids.identifier(a), self._ids.identifier(b), self._provenance[self._links.provenance(link)]
        )

    # -- snapshot and restore -------------------------------------------------------------------

    def snapshot(self) -> GraphSnapshot:
        ids, find = self._ids, self._sets.find
        keys = {node: ids.key_text(node) for node in range(len(ids)) if not ids.is_erased(node)}
        profile_ids = {root: ids.profile_id(root) for root in {find(node) for node in keys}}
        links: list[LinkRow] = []
        for link in self._links.live():
            (a, b), provenance = self._links.ends(link), self._provenance[self._links.provenance(link)]
            links.append(
                LinkRow(
                    a=keys[a], b=keys[b], message_id=provenance.message_id, event=provenance.event,
                    timestamp=provenance.timestamp.isoformat(), rule=provenance.rule.value,
                )
            )  # fmt: skip
        return GraphSnapshot(
            identifiers=tuple(
                {"identifier": key, "profile_id": profile_ids[find(node)]} for node, key in keys.items()
            ),
            links=tuple(links),
            redirects=tuple(
                {"absorbed": ids.profile_id(node), "survivor": profile_ids[find(node)]}
                for node in keys
                if self._issued[node] and find(node) != node
            ),
            forbidden_pairs=tuple(
                {"a": keys[a], "b": keys[b], "reason": reason} for (a, b), reason in self._forbidden.items()
            ),
            detached=tuple(
                {"identifier": keys[node], "reason": reason} for node, reason in self._detached.items()
            ),
        )

    @classmethod
    def restore(
        cls, snapshot: GraphSnapshot, limits: LinkLimits | None = None, *, profile_id_salt: bytes = b""
    ) -> IdentityGraph:
        """The graph a snapshot was taken of. Links are re-applied without limit checks: they were
        accepted once, and a lowered limit must not tear existing profiles apart on restart.

        Raises ``ValueError`` if the snapshot is inconsistent (corrupt, or another salt).
        """
        graph = cls(limits, profile_id_salt=profile_id_salt)
        nodes = _NodesByKey()
        for row in snapshot.identifiers:
            node, _digest, is_new = graph._ids.intern(Identifier.parse(row["identifier"]))
            if not is_new:
                raise ValueError(f"snapshot inconsistent: identifier listed twice: {row['identifier']}")
            graph._add_node()
            nodes[row["identifier"]] = node
        provenance_rows: dict[Provenance, int] = {}
        for link_row in snapshot.links:
            graph._restore_link(nodes[link_row["a"]], nodes[link_row["b"]], link_row, provenance_rows)
        for node in range(len(nodes)):
            graph._issued[graph._sets.find(node)] = 1  # every current profile id was handed out
        for redirect in snapshot.redirects:
            absorbed = graph._ids.node_of_profile_id(redirect["absorbed"])
            if absorbed is None:
                raise ValueError(
                    f"snapshot inconsistent: redirect from an id no identifier has: {redirect['absorbed']}"
                )
            graph._issued[absorbed] = 1
        for pair in snapshot.forbidden_pairs:
            graph._forbidden[_pair(nodes[pair["a"]], nodes[pair["b"]])] = pair["reason"]
        for detached in snapshot.detached:
            graph._detached[nodes[detached["identifier"]]] = detached["reason"]
        graph._check(snapshot)
        return graph

    def _restore_link(self, a: int, b: int, row: LinkRow, provenance_rows: dict[Provenance, int]) -> None:
        provenance = Provenance(
            row["message_id"], row["event"], datetime.fromisoformat(row["timestamp"]), LinkRule(row["rule"])
        )
        provenance_row = provenance_rows.get(provenance)
        if provenance_row is None:
            provenance_row = provenance_rows[provenance] = self._provenance.append(provenance)
        self._links.add(a, b, provenance_row)
        root, other_root = self._sets.find(a), self._sets.find(b)
        if root != other_root:
            self._join(root, other_root)

    def _check(self, snapshot: GraphSnapshot) -> None:
        for row in snapshot.identifiers:
            self._expect(
                row["identifier"], self.profile_of(Identifier.parse(row["identifier"])), row["profile_id"]
            )
        for redirect in snapshot.redirects:
            self._expect(redirect["absorbed"], self.resolve(redirect["absorbed"]), redirect["survivor"])

    @staticmethod
    def _expect(subject: str, actual: str | None, expected: str) -> None:
        if actual != expected:
            raise ValueError(f"snapshot inconsistent: {subject} restores to {actual}, not {expected}")
