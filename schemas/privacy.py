"""Privacy events: a person's consent decision for one processing purpose.

The purposes are configurable (``CDP_CONSENT_PURPOSES``). Validation reads them from the pydantic
validation context (``{"consent_purposes": [...]}``, as ingest passes it); without one, the
default purposes apply.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from schemas.base import OpenProperties

DEFAULT_CONSENT_PURPOSES: tuple[str, ...] = ("email_marketing", "personalisation", "analytics")
CONSENT_STATUSES: tuple[str, ...] = ("granted", "denied", "withdrawn")
PURPOSE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
PURPOSES_CONTEXT = "consent_purposes"

ConsentStatus = Literal["granted", "denied", "withdrawn"]


def purposes_from(context: Any) -> Collection[str]:
    """The configured purposes a validation context carries, else the defaults."""
    if isinstance(context, dict) and context.get(PURPOSES_CONTEXT) is not None:
        purposes: Collection[str] = context[PURPOSES_CONTEXT]
        return purposes
    return DEFAULT_CONSENT_PURPOSES


class ConsentUpdatedProperties(OpenProperties):
    """Consent Updated: a person granted, denied or withdrew consent for one purpose."""

    purpose: str = Field(
        description="The processing purpose: one of CDP_CONSENT_PURPOSES "
        f"(default {', '.join(DEFAULT_CONSENT_PURPOSES)})",
        pattern=PURPOSE_PATTERN,
    )
    status: ConsentStatus = Field(description="granted, denied or withdrawn")
    legal_text_version: str | None = Field(
        None, min_length=1, max_length=256, description="Version of the consent text shown; required to grant"
    )
    double_opt_in: bool | None = Field(
        None, description="true: confirmed by double opt-in (email); false or absent: not (yet) confirmed"
    )
    reason: str | None = Field(None, max_length=1000, description="Why, e.g. 'cookie banner', 'phone call'")
    list_id: str | None = Field(None, description="The email list, for email_marketing")

    @field_validator("purpose")
    @classmethod
    def _configured_purpose(cls, value: str, info: ValidationInfo) -> str:
        purposes = purposes_from(info.context)
        if value not in purposes:
            raise ValueError(f"unknown purpose {value!r}; use one of {', '.join(purposes)}")
        return value

    @model_validator(mode="after")
    def _grant_names_its_text(self) -> Self:
        if self.status == "granted" and not self.legal_text_version:
            raise ValueError("a granted consent needs legal_text_version (the version of the text shown)")
        return self
