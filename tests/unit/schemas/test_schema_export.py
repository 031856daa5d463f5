from pathlib import Path

from schemas.export import JSON_DIR, all_schemas, render


def test_exported_json_schemas_match_the_models():
    expected = all_schemas()
    stale = [name for name, schema in expected.items() if (JSON_DIR / name).read_bytes() != render(schema)]
    assert not stale, f"schemas/json is out of date for {stale}: run 'make schemas' and commit the result"


def test_no_orphan_schema_files():
    present = {str(p.relative_to(JSON_DIR)) for p in Path(JSON_DIR).rglob("*.json")}
    orphans = present - set(all_schemas())
    assert not orphans, f"schema files without a model: {sorted(orphans)}; delete them or run 'make schemas'"


def test_every_catalog_event_has_a_schema():
    names = {schema.get("x-event") for schema in all_schemas().values()}
    assert {"Order Completed", "Conversation Rated", "Double Opt-In Confirmed"} <= names
