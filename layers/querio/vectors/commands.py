"""``querio vectors ...``: migrate, verify and reconcile (registered by ``querio.cli``).

    querio vectors migrate --from pgvector --to pinecone [--dry-run] [--batch-size N]
                           [--stop-after N] [--restart] [--no-verify] [--questions FILE] [--k K] [--json]
    querio vectors verify [--questions FILE] [--sample N] [--k K] [--json]
    querio vectors reconcile [--dry-run] [--json]
    querio vectors index [--min-rows N] [--json]

Pinecone comes from the usual settings (``QUERIO_PINECONE_INDEX``, ``QUERIO_PINECONE_API_KEY`` or
``..._SECRET_ARN``, optional ``QUERIO_PINECONE_HOST``) whatever ``QUERIO_VECTOR_BACKEND`` says.
Progress goes to stderr; ``--json`` prints the report alone on stdout. Exit codes: 0 done (counts
equal), 1 counts differ after a migration or a verify, or a domain error; 2 usage.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from querio.errors import ValidationFailed

if TYPE_CHECKING:
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vectors import PgVectorStore
    from querio.cli import Ctx
    from querio.vectors.verify import VerifyReport

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[3].parent / "shared" / "eval" / "questions.jsonl"


def add_parser(sub: Any, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    """Register ``vectors migrate | verify | reconcile`` on the CLI's sub-parsers."""
    vectors = sub.add_parser("vectors", parents=[common],
                             help="per-tenant vector indexes; move vectors to Pinecone, verify, reconcile")
    vsub = vectors.add_subparsers(dest="vectors_command", required=True, metavar="ACTION")

    checks = argparse.ArgumentParser(add_help=False)
    checks.add_argument("--questions", type=Path, metavar="FILE",
                        help="JSON lines with a 'question' key, used when query analytics are empty"
                             " (default: ../shared/eval/questions.jsonl when present)")
    checks.add_argument("--sample", type=int, default=50, help="queries to compare (default 50; 0 = counts only)")
    checks.add_argument("--k", type=int, default=10, help="top-k compared (default 10)")

    p = vsub.add_parser("migrate", parents=[common, as_json, checks],
                        help="copy pgvector vectors into Pinecone (resumable, idempotent)")
    p.add_argument("--from", dest="source", choices=["pgvector"], required=True)
    p.add_argument("--to", dest="target", choices=["pinecone"], required=True)
    p.add_argument("--dry-run", action="store_true", help="count and check the index; write nothing")
    p.add_argument("--batch-size", type=int, default=500, help="rows per step (1-10,000; default 500)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N batches (rehearse a resume)")
    p.add_argument("--restart", action="store_true", help="start a new pass instead of resuming")
    p.add_argument("--no-verify", action="store_true", help="skip the verification at the end")
    p.set_defaults(func=cmd_migrate)

    p = vsub.add_parser("verify", parents=[common, as_json, checks],
                        help="compare counts per tenant and top-k answers of pgvector and Pinecone")
    p.set_defaults(func=cmd_verify)

    p = vsub.add_parser("reconcile", parents=[common, as_json],
                        help="re-upsert chunk rows missing in Pinecone, delete Pinecone orphans")
    p.add_argument("--dry-run", action="store_true", help="count only")
    p.set_defaults(func=cmd_reconcile)

    p = vsub.add_parser("index", parents=[common, as_json],
                        help="build the own HNSW index of every tenant above the size threshold (idempotent)")
    p.add_argument("--min-rows", type=int, metavar="N",
                   help="chunk rows a tenant needs (default QUERIO_TENANT_INDEX_MIN_ROWS)")
    p.set_defaults(func=cmd_index)


def _stores(ctx: Ctx) -> tuple[PostgresDocumentStore, PgVectorStore]:
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.adapters.postgres.vectors import PgVectorStore
    from querio.vectors.mirror import MirroredVectorStore

    service = ctx.service
    store = cast(PostgresDocumentStore, service.documents)
    vectors = service.vectors
    pgvector = vectors.pgvector if isinstance(vectors, MirroredVectorStore) else cast(PgVectorStore, vectors)
    return store, pgvector


def _verify(ctx: Ctx, store: PostgresDocumentStore, pgvector: PgVectorStore) -> VerifyReport:
    from querio.vectors.verify import load_questions, verify
    from querio.wiring import build_pinecone_store

    args = ctx.args
    if args.k < 1 or args.k > 100:
        raise ValidationFailed("--k must be from 1 to 100")
    path = args.questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.is_file() else None)
    if args.questions is not None and not args.questions.is_file():
        raise ValidationFailed(f"{args.questions}: no such file")
    questions = load_questions(path) if path else []
    embedder = ctx.service.embedder if args.sample > 0 else None
    return verify(store, pgvector, build_pinecone_store(ctx.settings),
                  embed_query=embedder.embed_query if embedder else None, questions=questions, k=args.k,
                  sample=args.sample)


def _print_verify(ctx: Ctx, report: VerifyReport) -> None:
    table = Table(title="vectors per tenant", title_justify="left")
    for col in ("tenant", "pgvector", "pinecone", ""):
        table.add_column(col, justify="right" if col in ("pgvector", "pinecone") else "left")
    for tenant, c in report.counts.items():
        same = c["pgvector"] == c["pinecone"]
        table.add_row(tenant, f"{c['pgvector']:,}", f"{c['pinecone']:,}", "[green]equal" if same else "[red]DIFFER")
    ctx.out.print(table)
    if report.queries:
        recall = ", ".join(f"{name} {value:.3f}" for name, value in report.recall_at_k.items())
        ctx.out.print(f"{report.queries} queries ({report.query_source}): top-{report.k} agreement "
                      f"{report.agreement_at_k:.3f} (min {report.min_agreement:.3f}); recall@{report.k} vs exact: "
                      f"{recall}")
    else:
        ctx.out.print("no queries compared (no query analytics and no questions file)")


def cmd_migrate(ctx: Ctx) -> int:
    from querio.vectors.migrate import MigrationReport, migrate
    from querio.wiring import build_pinecone_store

    args = ctx.args
    store, pgvector = _stores(ctx)
    target = build_pinecone_store(ctx.settings)
    progress = Progress(TextColumn("[bold]migrating"), BarColumn(), MofNCompleteColumn(), TextColumn("vectors"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=ctx.err, transient=False)
    task: list[Any] = []

    def on_start(report: MigrationReport) -> None:
        if report.resumed:
            ctx.err.print(f"resuming after chunk {report.start_after} ({report.copied_total:,} already copied)")
        progress.start()
        task.append(progress.add_task("migrate", total=report.remaining_at_start))

    def on_batch(_report: MigrationReport, rows: int) -> None:
        progress.advance(task[0], rows)

    try:
        report = migrate(store, target, batch_size=args.batch_size, dry_run=args.dry_run, stop_after=args.stop_after,
                         restart=args.restart, on_start=on_start, on_batch=on_batch)
    finally:
        progress.stop()
    result: dict[str, Any] = {"migration": asdict(report)}
    verified = None
    if report.completed and not args.no_verify:
        verified = _verify(ctx, store, pgvector)
        result["verify"] = asdict(verified)
    if ctx.json:
        ctx.emit_json(result)
    else:
        if report.dry_run:
            ctx.out.print(f"dry run: {report.remaining_at_start:,} of {report.total_live:,} vectors to copy in "
                          f"{report.batches} batches of {args.batch_size}; nothing written")
            for tenant, n in report.planned_per_tenant.items():
                ctx.out.print(f"  {tenant}: {n:,}")
        elif report.stopped_early:
            ctx.out.print(f"stopped after {report.batches} batches ({report.copied:,} vectors this run, "
                          f"{report.copied_total:,} in all); run the same command again to resume")
        else:
            ctx.out.print(f"copied {report.copied:,} vectors in {report.batches} batches ({report.requests} upsert"
                          f" requests){' after resuming' if report.resumed else ''}; {report.copied_total:,} in this"
                          " pass")
        if verified is not None:
            _print_verify(ctx, verified)
    return 1 if verified is not None and not verified.counts_match else 0


def cmd_verify(ctx: Ctx) -> int:
    store, pgvector = _stores(ctx)
    report = _verify(ctx, store, pgvector)
    if ctx.json:
        ctx.emit_json(asdict(report))
    else:
        _print_verify(ctx, report)
    return 0 if report.counts_match else 1


def cmd_reconcile(ctx: Ctx) -> int:
    from querio.vectors.reconcile import reconcile
    from querio.wiring import build_pinecone_store

    store, _ = _stores(ctx)
    report = reconcile(store, build_pinecone_store(ctx.settings), dry_run=ctx.args.dry_run)
    if ctx.json:
        ctx.emit_json(asdict(report) | {"missing": report.missing, "orphans": report.orphans})
        return 0
    verb = ("would re-upsert", "would delete") if report.dry_run else ("re-upserted", "deleted")
    for tenant, t in report.tenants.items():
        ctx.out.print(f"{tenant}: pgvector {t.pgvector:,}, pinecone {t.pinecone:,}; {verb[0]} {t.missing:,} missing,"
                      f" {verb[1]} {t.orphans:,} orphans")
    if not report.tenants:
        ctx.out.print("no tenants with vectors")
    return 0


def cmd_index(ctx: Ctx) -> int:
    """Build missing per-tenant HNSW indexes (ingest builds them too, in the background)."""
    _, pgvector = _stores(ctx)
    min_rows = ctx.args.min_rows if ctx.args.min_rows is not None else ctx.settings.tenant_index_min_rows
    if min_rows <= 0:
        raise ValidationFailed("--min-rows (or QUERIO_TENANT_INDEX_MIN_ROWS) must be positive")
    built = pgvector.ensure_tenant_indexes(min_rows=min_rows)
    if ctx.json:
        ctx.emit_json({"built": built, "min_rows": min_rows})
    else:
        ctx.out.print(f"built {len(built)} tenant index(es)" + (f": {', '.join(built)}" if built else "")
                      + f" (tenants above {min_rows:,} chunks)")
    return 0
