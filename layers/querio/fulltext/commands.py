"""``querio fulltext ...``: backfill, verify and reconcile OpenSearch (registered by ``querio.cli``).

    querio fulltext backfill [--dry-run] [--batch-size N] [--stop-after N] [--restart] [--json]
    querio fulltext verify [--questions FILE] [--k K] [--json]
    querio fulltext reconcile [--dry-run] [--json]

OpenSearch comes from ``QUERIO_OPENSEARCH_URL`` (and ``QUERIO_OPENSEARCH_INDEX_PREFIX``) whatever
``QUERIO_FULLTEXT_BACKEND`` says. Progress goes to stderr; ``--json`` prints the report alone on
stdout. Exit codes: 0 done (counts equal), 1 counts differ after a verify, or a domain error.
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
    from querio.adapters.opensearch import OpenSearchFullText
    from querio.adapters.postgres.fulltext import PostgresChunkSource
    from querio.cli import Ctx

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[3].parent / "shared" / "eval" / "questions.jsonl"


def add_parser(sub: Any, common: argparse.ArgumentParser, as_json: argparse.ArgumentParser) -> None:
    """Register ``fulltext backfill | verify | reconcile`` on the CLI's sub-parsers."""
    fulltext = sub.add_parser("fulltext", parents=[common],
                              help="fill OpenSearch from PostgreSQL, verify it, reconcile it (issue 15)")
    fsub = fulltext.add_subparsers(dest="fulltext_command", required=True, metavar="ACTION")

    p = fsub.add_parser("backfill", parents=[common, as_json],
                        help="copy live chunks into the OpenSearch index (resumable, idempotent)")
    p.add_argument("--dry-run", action="store_true", help="count only; write nothing")
    p.add_argument("--batch-size", type=int, default=500, help="chunks per step (1-5,000; default 500)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N batches (rehearse a resume)")
    p.add_argument("--restart", action="store_true", help="start a new pass instead of resuming")
    p.set_defaults(func=cmd_backfill)

    p = fsub.add_parser("verify", parents=[common, as_json],
                        help="compare counts per tenant and top-k answers of PostgreSQL and OpenSearch")
    p.add_argument("--questions", type=Path, metavar="FILE",
                   help="JSON lines with a 'question' key (default: ../shared/eval/questions.jsonl when present)")
    p.add_argument("--k", type=int, default=10, help="top-k compared (default 10)")
    p.set_defaults(func=cmd_verify)

    p = fsub.add_parser("reconcile", parents=[common, as_json],
                        help="index live chunks missing in OpenSearch, delete records without a live chunk")
    p.add_argument("--dry-run", action="store_true", help="count only")
    p.set_defaults(func=cmd_reconcile)


def _parts(ctx: Ctx) -> tuple[PostgresChunkSource, OpenSearchFullText]:
    from querio.adapters.postgres.fulltext import PostgresChunkSource
    from querio.adapters.postgres.store import PostgresDocumentStore
    from querio.wiring import build_opensearch

    store = cast(PostgresDocumentStore, ctx.service.documents)
    return PostgresChunkSource(store), build_opensearch(ctx.settings)


def cmd_backfill(ctx: Ctx) -> int:
    from querio.fulltext.ops import BackfillReport, backfill

    args = ctx.args
    source, index = _parts(ctx)
    progress = Progress(TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=ctx.err, transient=False)
    task: list[Any] = []

    def on_start(report: BackfillReport) -> None:
        if report.resumed:
            ctx.err.print(f"resuming after chunk {report.start_after} ({report.copied_total:,} already copied)")
        progress.start()
        task.append(progress.add_task("backfill", total=report.remaining_at_start))

    def on_batch(_report: BackfillReport, rows: int) -> None:
        progress.advance(task[0], rows)

    try:
        report = backfill(source, index, batch_size=args.batch_size, dry_run=args.dry_run,
                          stop_after=args.stop_after, restart=args.restart, on_start=on_start, on_batch=on_batch)
    finally:
        progress.stop()
    if ctx.json:
        ctx.emit_json(asdict(report))
    elif report.dry_run:
        ctx.out.print(f"dry run: {report.remaining_at_start:,} of {report.total_live:,} chunks to index in "
                      f"{report.batches} batches of {args.batch_size} into {index.index}; nothing written")
    elif report.stopped_early:
        ctx.out.print(f"stopped after {report.batches} batches ({report.copied:,} chunks this run, "
                      f"{report.copied_total:,} in all); run the same command again to resume")
    else:
        ctx.out.print(f"indexed {report.copied:,} chunks in {report.batches} batches ({report.requests} bulk "
                      f"requests) into {index.index}{' after resuming' if report.resumed else ''};"
                      f" {report.copied_total:,} in this pass")
    return 0


def cmd_verify(ctx: Ctx) -> int:
    from querio.adapters.postgres.fulltext import PostgresFullText
    from querio.fulltext.ops import verify
    from querio.vectors.verify import load_questions

    args = ctx.args
    path = args.questions or (DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.is_file() else None)
    if args.questions is not None and not args.questions.is_file():
        raise ValidationFailed(f"{args.questions}: no such file")
    questions = load_questions(path) if path else []
    source, index = _parts(ctx)
    postgres = PostgresFullText(source.store, text_depth=ctx.settings.text_depth, budget=ctx.settings.text_budget)
    with Progress(TextColumn("[bold]comparing"), BarColumn(), MofNCompleteColumn(), TextColumn("questions"),
                  console=ctx.err, transient=True) as progress:
        task = progress.add_task("verify", total=None)

        def on_question(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = verify(source, postgres, index, questions=questions, k=args.k, on_question=on_question)
    if ctx.json:
        ctx.emit_json(asdict(report))
        return 0 if report.counts_match else 1
    table = Table(title="chunks per tenant", title_justify="left")
    for col in ("tenant", "postgres", "opensearch", ""):
        table.add_column(col, justify="right" if col in ("postgres", "opensearch") else "left")
    for tenant, c in report.counts.items():
        same = c["postgres"] == c["opensearch"]
        table.add_row(tenant, f"{c['postgres']:,}", f"{c['opensearch']:,}", "[green]equal" if same else "[red]DIFFER")
    ctx.out.print(table)
    if report.queries:
        ctx.out.print(f"{report.queries} question(s) x tenant: top-{report.k} overlap mean {report.agreement_at_k:.3f}"
                      f" (min {report.min_agreement:.3f})")
    else:
        ctx.out.print("no questions compared (no questions file)")
    return 0 if report.counts_match else 1


def cmd_reconcile(ctx: Ctx) -> int:
    from querio.fulltext.ops import reconcile

    source, index = _parts(ctx)
    report = reconcile(source, index, dry_run=ctx.args.dry_run)
    if ctx.json:
        ctx.emit_json(asdict(report) | {"missing": report.missing, "orphans": report.orphans})
        return 0
    verb = ("would index", "would delete") if report.dry_run else ("indexed", "deleted")
    for tenant, t in report.tenants.items():
        ctx.out.print(f"{tenant}: postgres {t.postgres:,}, opensearch {t.opensearch:,}; {verb[0]} {t.missing:,}"
                      f" missing, {verb[1]} {t.orphans:,} orphans")
    if not report.tenants:
        ctx.out.print("no tenants with chunks")
    return 0
