"""The built-in segment library: ready-made definitions for common shop audiences.

Each definition is a YAML file in ``services/segments/library/`` named after its id. They are
ordinary definitions: apply them as they are, or copy one, change it and apply it under the same id.
"""

from __future__ import annotations

from importlib.resources import files

from services.segments.domain.definition import DefinitionError, SegmentDefinition, load_documents

LIBRARY_PACKAGE = "services.segments"
LIBRARY_FOLDER = "library"


def library_definitions() -> list[SegmentDefinition]:
    """Every built-in definition, sorted by id. DefinitionError if a packaged file is broken (a bug)."""
    definitions: list[SegmentDefinition] = []
    problems: list[str] = []
    for entry in files(LIBRARY_PACKAGE).joinpath(LIBRARY_FOLDER).iterdir():
        if not entry.is_file() or not entry.name.endswith(".yaml"):
            continue
        source = f"{LIBRARY_FOLDER}/{entry.name}"
        try:
            loaded = load_documents(entry.read_text(encoding="utf-8"), source)
        except DefinitionError as exc:
            problems.extend(f"{source}: {problem}" for problem in exc.problems)
            continue
        stem = entry.name.removesuffix(".yaml")
        if len(loaded) != 1 or loaded[0].id != stem:
            problems.append(f"{source}: expected exactly one definition with id {stem!r}")
            continue
        definitions.append(loaded[0])
    if problems:
        raise DefinitionError(problems)
    return sorted(definitions, key=lambda d: d.id)
