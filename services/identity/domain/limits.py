"""How many identifiers of each type one profile may hold.

Real people have one customer account, a few email addresses and phones, and a device id per
browser and app. A profile far beyond that is almost always a merge gone wrong (a shared tablet,
a placeholder email, a support agent typing their own address into a customer's order), so a link
that would exceed a limit is refused and recorded instead of growing a mega-profile.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.identity.domain.identifiers import ID_TYPES_BY_RANK, IdType


class LinkLimits(BaseModel):
    """Per-type maximum per profile.

    ``customer_id`` is fixed at 1: two profiles that each hold a customer id are never merged
    (reason ``customer_id_conflict``), whatever the other limits say, because a customer account is
    the one identifier the shop itself vouches for: two accounts are two people until an operator
    says otherwise.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: Literal[1] = 1
    email: int = Field(5, ge=1)
    phone: int = Field(5, ge=1)
    email_recipient_id: int = Field(5, ge=1)
    chat_handle: int = Field(5, ge=1)
    anonymous_id: int = Field(100, ge=1)

    def of(self, id_type: IdType) -> int:
        limit: int = getattr(self, id_type.value)
        return limit

    def by_rank(self) -> tuple[int, ...]:
        """The limits indexed by ``IdType.rank`` (the graph's hot path reads them this way)."""
        return tuple(self.of(id_type) for id_type in ID_TYPES_BY_RANK)
