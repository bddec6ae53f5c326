"""Versioned SQL migrations, applied automatically and idempotently.

Migrations are the files ``migrations/NNNN_name.sql`` shipped inside this package (read with
:mod:`importlib.resources`, so they work from a wheel, a Lambda layer or a source tree).
Version ``NNNN`` orders them; each runs in its own transaction together with its row in
``schema_migrations``, so a failing migration leaves no trace and is retried next time.

Concurrent runners (many Lambda cold starts, a CLI next to a server) are serialised with a
session-level ``pg_advisory_lock``; the loser waits, then finds nothing left to apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from querio.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)

#: Arbitrary but fixed key of the advisory lock (the ASCII bytes "querio" + "mi" as an int64).
MIGRATION_LOCK_KEY = 0x717565_72696F_6D69

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # file name without ".sql", e.g. "0001_initial"
    sql: str
    checksum: str  # sha256 hex of the file's bytes


def available_migrations() -> list[Migration]:
    """The packaged migrations, ordered by version; ``ConfigurationError`` on a duplicate version."""
    folder = resources.files("querio.adapters.postgres").joinpath("migrations")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        m = _FILE_RE.match(entry.name)
        if not m:
            continue
        data = entry.read_bytes()
        version = int(m.group(1))
        if version in found:
            raise ConfigurationError(f"two migrations share version {version}: "
                                     f"{found[version].name}.sql and {entry.name}")
        found[version] = Migration(version, entry.name.removesuffix(".sql"), data.decode("utf-8"),
                                   hashlib.sha256(data).hexdigest())
    return [found[v] for v in sorted(found)]


def migrate(conninfo: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``.

    Returns the names applied by this call (``[]`` when the schema is current).
    ``migrations`` overrides the packaged list (tests). Raises ``ConfigurationError`` when an
    applied migration's file changed (checksum mismatch: fix the file, never edit history)
    or a migration's SQL fails, and ``TransientError`` when the database is unreachable.
    """
    todo = available_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    try:
        # autocommit: the advisory lock is session-level and each migration opens its own
        # transaction; the lock is released explicitly and, at worst, when the session ends.
        with psycopg.connect(conninfo, autocommit=True, application_name="querio-migrate") as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                conn.execute(_CREATE_TABLE)
                rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
                applied = {int(v): (str(n), str(c)) for v, n, c in rows}
                known = {m.version for m in todo}
                for m in todo:
                    if m.version in applied:
                        name, checksum = applied[m.version]
                        if checksum != m.checksum:
                            raise ConfigurationError(
                                f"migration {m.name} was changed after it was applied "
                                f"(recorded {name} sha256 {checksum[:12]}…, file has {m.checksum[:12]}…); "
                                "restore the file and add a new migration instead",
                                details={"version": m.version},
                            )
                        continue
                    try:
                        with conn.transaction():
                            # no parameters: psycopg sends the file as one simple query, so it may
                            # hold many statements (and literal % signs)
                            conn.execute(m.sql.encode("utf-8"))
                            conn.execute(
                                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                (m.version, m.name, m.checksum),
                            )
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as exc:
                        raise ConfigurationError(f"migration {m.name} failed: {exc}",
                                                 details={"version": m.version}) from exc
                    log.info("applied migration %s", m.name)
                    applied_now.append(m.name)
                newer = sorted(set(applied) - known)
                if newer:
                    # A newer release migrated this database (rolling deploy): older code keeps
                    # running on the schema it knows; additive migrations make this safe.
                    log.warning("database has migrations this code does not know: %s", newer)
            finally:
                # a broken session releases the lock by ending; don't mask the original error
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    except psycopg.OperationalError as exc:
        raise TransientError(f"cannot migrate the database: {exc}") from exc
    return applied_now
