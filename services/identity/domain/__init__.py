"""Identity resolution as pure code: identifier normalisation and the identity graph (no I/O)."""

from services.identity.domain.graph import IdentityGraph
from services.identity.domain.identifier_table import IdentifierHashCollisionError
from services.identity.domain.identifiers import (
    Identifier,
    IdentifierRules,
    IdType,
    identifiers_of,
    normalise_identifier,
)
from services.identity.domain.limits import LinkLimits
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
from services.identity.domain.profile_state import ProfileState, UnfoldableEventError
from services.identity.domain.provenance import LinkRule, Provenance, provenance_of
from services.identity.domain.snapshot import GraphSnapshot
from services.identity.domain.traits import TraitPolicy

__all__ = [
    "EraseResult",
    "GraphSnapshot",
    "GraphStats",
    "IdType",
    "Identifier",
    "IdentifierHashCollisionError",
    "IdentifierRules",
    "IdentityGraph",
    "Link",
    "LinkLimits",
    "LinkRule",
    "Merge",
    "ObserveResult",
    "ProfileState",
    "Provenance",
    "RefusalReason",
    "RefusedLink",
    "SplitResult",
    "SplitStatus",
    "TraitPolicy",
    "UnfoldableEventError",
    "identifiers_of",
    "normalise_identifier",
    "provenance_of",
]
