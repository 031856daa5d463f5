"""Idempotent warehouse migrations: ``schemas/ddl/NNN_name.sql`` applied in order, once.

Each file may hold several statements separated by ``;`` and names the database ``{db}``.
Applied files are recorded in ``{db}.schema_migrations`` with their SHA-256; a recorded file
whose content changed stops the run (write a new file instead of editing an applied one).
A file is recorded only after all its statements succeeded, so statements should be
re-runnable (``IF NOT EXISTS``) in case a run stops halfway through a file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import schemas
from services.core.warehouse.port import Warehouse, WarehouseError
from services.core.warehouse.sql_text import quote_identifier, split_statements

_FILE_RE = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")
_PLAIN_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationError(WarehouseError):
    """The migration files or the recorded history do not allow a safe run."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # file stem, e.g. "001_events"
    sql: str
    checksum: str


def default_ddl_dir() -> Path:
    """``schemas/ddl`` of the installed project.

    Found through the package path rather than importlib.resources: an editable install made
    before ``schemas/__init__.py`` existed imports ``schemas`` as a namespace package, whose
    path also lists the editable finder's hook.
    """
    for location in schemas.__path__:
        candidate = Path(location) / "ddl"
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no ddl directory in the schemas package ({list(schemas.__path__)})")


def load_migrations(ddl_dir: Path) -> list[Migration]:
    """The ``NNN_name.sql`` files of ``ddl_dir`` in version order; other files are ignored."""
    found: dict[int, Migration] = {}
    for path in sorted(ddl_dir.iterdir()):
        match = _FILE_RE.match(path.name)
        if match is None or not path.is_file():
            continue
        raw = path.read_bytes()
        migration = Migration(int(match.group(1)), path.stem, raw.decode(), hashlib.sha256(raw).hexdigest())
        if migration.version in found:
            raise MigrationError(
                f"two migrations share version {migration.version}: "
                f"{found[migration.version].name} and {migration.name}"
            )
        found[migration.version] = migration
    return [found[version] for version in sorted(found)]


def _database_sql_name(database: str) -> str:
    return database if _PLAIN_NAME_RE.match(database) else quote_identifier(database)


def _ensure_bookkeeping(warehouse: Warehouse, db: str) -> None:
    warehouse.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
        " version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')"
        ") ENGINE = MergeTree ORDER BY version"
    )


def apply_migrations(warehouse: Warehouse, ddl_dir: Path | None = None) -> list[str]:
    """Create the database, apply the migrations not yet recorded, return their names."""
    db = _database_sql_name(warehouse.database)
    migrations = load_migrations(ddl_dir or default_ddl_dir())
    _ensure_bookkeeping(warehouse, db)
    recorded = {
        int(row["version"]): row
        for row in warehouse.query_dicts(f"SELECT version, name, checksum FROM {db}.schema_migrations")
    }
    applied: list[str] = []
    for migration in migrations:
        previous = recorded.get(migration.version)
        if previous is not None:
            if previous["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} was applied as {previous['name']} with checksum "
                    f"{previous['checksum']} but the file now has checksum {migration.checksum}; "
                    "applied migrations must not change, add a new file instead"
                )
            continue
        for statement in split_statements(migration.sql.replace("{db}", db)):
            try:
                warehouse.command(statement)
            except WarehouseError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}", exc.code, exc.name) from exc
        warehouse.command(
            f"INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at)"
            " SELECT {version:UInt32}, {name:String}, {checksum:String}, now64(3, 'UTC')",
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
        applied.append(migration.name)
    return applied


def missing_migrations(warehouse: Warehouse, ddl_dir: Path | None = None) -> list[str]:
    """The migrations not recorded as applied (all of them when there is no bookkeeping table yet)."""
    migrations = load_migrations(ddl_dir or default_ddl_dir())
    db = _database_sql_name(warehouse.database)
    try:
        rows = warehouse.query(f"SELECT version FROM {db}.schema_migrations")
    except WarehouseError:
        return [migration.name for migration in migrations]
    recorded = {int(version) for (version,) in rows}
    return [migration.name for migration in migrations if migration.version not in recorded]
