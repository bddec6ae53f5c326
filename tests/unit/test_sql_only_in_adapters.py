"""SQL lives in ``layers/querio/adapters/`` only (issue 15): the domain, the CLI, ``vectors/`` and
the handlers reach the database through ports. The guard scans source text, so it is checked
here against planted cases (it must catch each) and against prose (it must not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("layers/querio", "functions")
EXEMPT_DIR = "layers/querio/adapters"
#: (file, text on the line) that look like SQL and are not, with the reason.
ALLOWED = {
    ("layers/querio/model_export.py", "SELECT id, title FROM documents WHERE tenant_id = $1"):
        "one of the fixed texts the exported embedding model is checked on; never run",
}

SQL = re.compile(r"""
    \bSELECT\b[^;"]{0,200}?\bFROM\b            # a query (upper case: SQL as this code base writes it)
  | \bINSERT\s+INTO\b | \bDELETE\s+FROM\b | \bUPDATE\s+\w+\s+SET\b
  | \b(?:CREATE|ALTER|DROP)\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|EXTENSION)\b
  | \bCOPY\s+\w+\s*\(
  | \.execute(?:many)?\( | \.cursor\( | \bsql\.(?:SQL|Identifier|Literal)\(
  | \bpsycopg\b | \bpgvector\.psycopg\b
""", re.VERBOSE)


def sql_findings(root: Path) -> list[str]:
    """``path:line: text`` of each line with SQL (or a database driver) under ``SCANNED``,
    outside ``EXEMPT_DIR``, not in ``ALLOWED``."""
    found = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT_DIR + "/"):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if SQL.search(line) and not any(rel == f and text in line for f, text in ALLOWED):
                    found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_no_sql_outside_the_adapters() -> None:
    assert sql_findings(ROOT) == []


PLANTED = [
    'rows = conn.execute("SELECT c.id, count(*) FROM document_chunks c")',
    '"INSERT INTO vector_migrations (name) VALUES (%s)"',
    '"UPDATE documents SET deleted_at = now() WHERE id = %s"',
    '"DELETE FROM chat_sessions WHERE id = %s"',
    "from psycopg.conninfo import make_conninfo",
    "with store.connection() as conn: conn.execute(q)",
    "cur.executemany(q, rows)",
    'stmt = sql.SQL("x").format(y)',
    'CREATE INDEX ON chunks (id)',
]
PROSE = [
    "# select the documents from the list the user sees",
    '"""Deleting from the archive removes the blob; updates set the class."""',
    "SELECTED = frozenset()  # from the CLI",
    "executor.submit(fn)",
]


@pytest.mark.parametrize("line", PLANTED)
def test_the_guard_catches_planted_sql(tmp_path: Path, line: str) -> None:
    domain = tmp_path / "layers/querio/vectors/planted.py"
    adapter = tmp_path / "layers/querio/adapters/postgres/allowed.py"
    for path in (domain, adapter):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"x = 1\n{line}\n", encoding="utf-8")
    (tmp_path / "functions").mkdir()
    assert sql_findings(tmp_path) == [f"layers/querio/vectors/planted.py:2: {line}"]


def test_the_guard_ignores_prose_and_the_allowed_text(tmp_path: Path) -> None:
    module = tmp_path / "layers/querio/model_export.py"
    module.parent.mkdir(parents=True)
    allowed = '    "SELECT id, title FROM documents WHERE tenant_id = $1 ORDER BY embedding <=> $2 LIMIT 10;",'
    module.write_text("\n".join([*PROSE, allowed]) + "\n", encoding="utf-8")
    (tmp_path / "functions").mkdir()
    assert sql_findings(tmp_path) == []
    other = tmp_path / "layers/querio/service.py"  # the allowance is for that one file only
    other.write_text(allowed + "\n", encoding="utf-8")
    assert sql_findings(tmp_path) == [f"layers/querio/service.py:1: {allowed.strip()}"]
