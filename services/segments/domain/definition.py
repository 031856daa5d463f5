"""A segment definition document and the catalog of applied definitions.

Definitions are YAML or JSON documents validated by ``SegmentDefinition`` (pydantic) and
``parse_rule``; a bad document gets every problem as ``path: reason`` and changes nothing. The
catalog gives each content change a new version and refuses references to unknown segments and
cycles, so every catalog can be evaluated in one pass in ``order``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from services.segments.domain.rules import (
    CONSENT_PURPOSES,
    Rule,
    RuleError,
    check_purpose,
    dependencies,
    parse_rule,
)

SEGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Validation context key: the consent purposes a definition may name (None: any purpose name).
PURPOSES = "consent_purposes"


def _purposes(info: ValidationInfo) -> Collection[str] | None:
    context = info.context
    if isinstance(context, Mapping) and PURPOSES in context:
        purposes: Collection[str] | None = context[PURPOSES]
        return purposes
    return CONSENT_PURPOSES


class DefinitionError(ValueError):
    """Every problem of a document, each as ``path: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Activation(BaseModel):
    """Publish on ``cdp.segment.<id>`` only profiles that granted ``consent``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    consent: str
    double_opt_in: bool = False

    @field_validator("consent")
    @classmethod
    def _known_purpose(cls, value: str, info: ValidationInfo) -> str:
        try:
            return check_purpose(value, _purposes(info), "consent")
        except RuleError as exc:
            raise ValueError(exc.reason) from None


class SegmentDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="lower-case letters, digits, '_' and '-'; names the topic cdp.segment.<id>")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    rule: dict[str, Any]
    expose: list[str] = Field(default_factory=list, description="traits/attributes sent with each transition")
    activation: Activation | None = None

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not SEGMENT_ID.match(value):
            raise ValueError(
                f"{value!r} is not a segment id: use 1-63 lower-case letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("rule", mode="before")
    @classmethod
    def _valid_rule(cls, value: Any, info: ValidationInfo) -> Any:
        parse_rule(value, purposes=_purposes(info))  # RuleError (a ValueError) carries the path in the rule
        return value

    @field_validator("expose")
    @classmethod
    def _valid_expose(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or not isinstance(name, str):
                raise ValueError("expose lists trait or attribute names")
        return value

    def compiled(self) -> Rule:
        return parse_rule(self.rule, purposes=None)  # checked when the definition was validated

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=False)

    def content_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), RuleError):
            problems.append(str(ctx["error"]))
            continue
        path = ".".join(str(part) for part in error["loc"]) or "document"
        problems.append(f"{path}: {message}")
    return problems


def parse_definition(data: object, purposes: Collection[str] | None = CONSENT_PURPOSES) -> SegmentDefinition:
    """``data`` as a definition; ``consent`` may name one of ``purposes`` (None: any purpose name,
    for definitions already stored). DefinitionError with every problem."""
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [f"document: expected a mapping (id, name, rule, ...); got {type(data).__name__}"]
        )
    try:
        return SegmentDefinition.model_validate(data, context={PURPOSES: purposes})
    except ValidationError as exc:
        raise DefinitionError(_problems(exc)) from None


def load_documents(
    text: str, source: str = "document", purposes: Collection[str] | None = CONSENT_PURPOSES
) -> list[SegmentDefinition]:
    """One definition, a list of them, or ``{segments: [...]}``, in YAML or JSON (YAML reads both);
    ``purposes`` are the consent purposes the definitions may name (CDP_CONSENT_PURPOSES)."""
    try:
        data = orjson.loads(text)  # JSON first: YAML refuses e.g. tab-indented JSON
    except orjson.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DefinitionError([f"{source}: not valid YAML or JSON: {exc}"]) from None
    if isinstance(data, Mapping) and "segments" in data and "rule" not in data:
        data = data["segments"]
    items = data if isinstance(data, list) else [data]
    definitions: list[SegmentDefinition] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            definitions.append(parse_definition(item, purposes))
        except DefinitionError as exc:
            prefix = f"segments[{i}]." if isinstance(data, list) else ""
            problems.extend(prefix + p for p in exc.problems)
    if problems:
        raise DefinitionError(problems)
    return definitions


@dataclass(frozen=True, slots=True)
class StoredSegment:
    definition: SegmentDefinition
    version: int
    content_hash: str
    updated_at: str  # ISO-8601

    @property
    def id(self) -> str:
        return self.definition.id


class SegmentCatalog:
    """The applied definitions: versions, dependency checks and evaluation order."""

    def __init__(self, stored: Iterable[StoredSegment] = ()) -> None:
        self._segments: dict[str, StoredSegment] = {s.id: s for s in stored}
        self._order = _topological(self._segments)
        self._rules = {sid: s.definition.compiled() for sid, s in self._segments.items()}

    def __contains__(self, segment_id: object) -> bool:
        return segment_id in self._segments

    def __len__(self) -> int:
        return len(self._segments)

    def get(self, segment_id: str) -> StoredSegment | None:
        return self._segments.get(segment_id)

    def rule(self, segment_id: str) -> Rule:
        return self._rules[segment_id]

    @property
    def order(self) -> list[str]:
        """Segment ids, every segment after the segments its rule refers to."""
        return list(self._order)

    def all(self) -> list[StoredSegment]:
        return [self._segments[sid] for sid in self._order]

    def plan(self, definitions: Iterable[SegmentDefinition], now_iso: str) -> list[StoredSegment]:
        """The stored versions ``definitions`` would become (unchanged ones left out); checks the
        resulting catalog as a whole. DefinitionError if any reference is unknown or cyclic."""
        changes: dict[str, StoredSegment] = {}
        for definition in definitions:
            digest = definition.content_hash()
            current = changes.get(definition.id) or self._segments.get(definition.id)
            if current is not None and current.content_hash == digest:
                continue
            version = 1 if current is None else current.version + 1
            changes[definition.id] = StoredSegment(definition, version, digest, now_iso)
        _topological({**self._segments, **changes})
        return list(changes.values())

    def with_changes(self, changes: Iterable[StoredSegment]) -> SegmentCatalog:
        merged = dict(self._segments)
        for stored in changes:
            current = merged.get(stored.id)
            if current is None or stored.version >= current.version:
                merged[stored.id] = stored
        return SegmentCatalog(merged.values())


def _topological(segments: Mapping[str, StoredSegment]) -> list[str]:
    deps = {sid: dependencies(s.definition.compiled()) for sid, s in segments.items()}
    problems = [
        f"{sid}.rule: refers to unknown segment {ref!r}"
        for sid in sorted(deps)
        for ref in sorted(deps[sid])
        if ref not in segments
    ]
    if problems:
        raise DefinitionError(problems)
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(sid: str, trail: list[str]) -> None:
        if state.get(sid) == 2:
            return
        if state.get(sid) == 1:
            cycle = [*trail[trail.index(sid) :], sid]
            raise DefinitionError(
                [f"{sid}.rule: segments refer to each other in a cycle: {' -> '.join(cycle)}"]
            )
        state[sid] = 1
        for ref in sorted(deps[sid]):
            visit(ref, [*trail, sid])
        state[sid] = 2
        order.append(sid)

    for sid in sorted(deps):
        visit(sid, [])
    return order
