"""``querio``: ingest, search, ask and serve from the command line (the embedded local stack).

    querio [--data-dir DIR] [--tenant T] [-v] COMMAND ...

    querio ingest PATH... [--tags a,b] [--workers N] [--json]  PDFs, or folders searched recursively
    querio query "question" [--k N] [--json]          an extractive answer with [n] file p. P citations
    querio search "text" [--k N] [--mode M] [--json]  ranked passages (hybrid | vector | text)
    querio docs list [--status S] [--limit N] [--offset N] [--json]
    querio docs show ID [--json] | querio docs delete ID [--json]
    querio stats [--json]
    querio serve [--port 8000] [--host 127.0.0.1]     the HTTP API (same routes as API Gateway)
    querio vectors migrate|verify|reconcile|index     pgvector -> Pinecone; per-tenant HNSW indexes
    querio fulltext backfill|verify|reconcile          PostgreSQL -> OpenSearch full text
    querio cost [--tier small|mid|enterprise] [--json] monthly AWS estimate of a deployment tier

``--data-dir`` sets ``QUERIO_DATA_DIR`` for this process (blobs and the private PostgreSQL
live there; default ``.querio``); every other setting comes from ``QUERIO_*`` variables.
Commands act as ``Principal(tenant_id=--tenant or QUERIO_LOCAL_TENANT, user_id="cli")``.

With ``--json`` only machine-readable JSON goes to stdout; progress bars and logs always go
to stderr.

Exit codes: 0 success; 1 a domain error (one line on stderr, no traceback; ``-vv`` logs it),
or, for ``ingest``, at least one file or path failed (the others were still ingested);
2 usage error (bad option, bad id, out-of-range ``--k``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from querio.config import Settings, load_settings
from querio.errors import QuerioError
from querio.ingest.bulk import default_workers, ingest_concurrently
from querio.ingest.pipeline import display_filename
from querio.models import (
    DocumentStatus,
    IngestOutcome,
    Principal,
    QueryRequest,
    SearchMode,
    SearchRequest,
)

if TYPE_CHECKING:
    from querio.service import QuerioService

log = logging.getLogger("querio.cli")

CLI_USER = "cli"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATUS_LABEL = {"ingested": "ingested", "duplicate": "duplicate (skipped)",
                "in_progress": "in progress (skipped)", "failed": "failed"}
STATUS_STYLE = {"ingested": "green", "duplicate": "yellow", "in_progress": "yellow", "failed": "bold red"}


class UsageError(Exception):
    """A bad argument found after parsing (exit code 2)."""


# --- context ---------------------------------------------------------------------------------------


class Ctx:
    """What a command needs: settings, the caller, the service (built on first use), output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.settings: Settings = load_settings()
        tenant = getattr(args, "tenant", None) or self.settings.local_tenant
        try:
            self.principal = Principal(tenant_id=tenant, user_id=CLI_USER)
        except ValidationError as exc:
            raise UsageError(f"invalid tenant id {tenant!r}: use letters, digits and ._@:- "
                             "(at most 128 characters, starting with a letter or digit)") from exc
        width = None if sys.stdout.isatty() else 160
        self.out = Console(width=width, highlight=False)
        self.err = Console(stderr=True, highlight=False)

    @cached_property
    def service(self) -> QuerioService:
        """Built on first use (database started, migrations applied), so usage errors stay fast."""
        from querio.wiring import build_service

        return build_service(self.settings)

    def close(self) -> None:
        if "service" in self.__dict__:
            try:
                self.service.close()
            except Exception:  # closing must never mask the command's own result
                log.debug("closing the document store failed", exc_info=True)

    def emit_json(self, data: Any) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()


# --- ingest --------------------------------------------------------------------------------------


@dataclass
class FileResult:
    path: str
    filename: str
    status: str  # ingested | duplicate | in_progress | failed
    reason: str | None = None
    error_code: str | None = None
    document_id: str | None = None
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @classmethod
    def from_outcome(cls, path: Path, outcome: IngestOutcome) -> FileResult:
        doc = outcome.document
        # the name the user gave *this* file (a duplicate's stored document may carry another)
        return cls(path=str(path), filename=path.name, status=outcome.status,
                   reason=outcome.reason, error_code=outcome.error_code,
                   document_id=str(doc.id) if doc else None, pages=outcome.pages, chunks=outcome.chunks,
                   seconds=outcome.seconds)


def collect_files(paths: Sequence[str]) -> tuple[list[Path], list[FileResult]]:
    """Files to ingest (folders searched recursively for ``*.pdf``, any case; explicit files
    kept whatever their extension) and failures for paths that cannot be used."""
    files: list[Path] = []
    problems: list[FileResult] = []

    def problem(raw: str, reason: str) -> None:
        problems.append(FileResult(path=raw, filename=Path(raw).name or raw, status="failed", reason=reason,
                                   error_code="unreadable_path"))

    for raw in paths:
        path = Path(raw).expanduser()
        try:
            if path.is_dir():
                found = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
                if not found:
                    problem(raw, "no PDF files in this folder")
                files.extend(found)
            elif path.is_file():
                files.append(path)
            elif path.exists():
                problem(raw, "not a regular file or folder")
            else:
                problem(raw, "no such file or folder")
        except OSError as exc:
            problem(raw, f"cannot read: {exc.strerror or exc}")
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values()), problems


def ingest_one(ctx: Ctx, path: Path, tags: Sequence[str], phase: Callable[[str], None]) -> FileResult:
    """Ingest one file; every problem becomes a ``failed`` result, never an exception."""
    started = time.perf_counter()
    try:
        phase("reading")
        data = path.read_bytes()
        outcome = ctx.service.ingest(ctx.principal, data, path.name, tags=tags, progress=phase)
        return FileResult.from_outcome(path, outcome)
    except OSError as exc:
        reason, code = f"cannot read: {exc.strerror or exc}", "unreadable_path"
    except QuerioError as exc:
        log.debug("ingest of %s failed", path, exc_info=True)
        reason, code = exc.message, exc.code
    except Exception as exc:
        log.debug("ingest of %s failed", path, exc_info=True)
        reason, code = f"unexpected error: {type(exc).__name__}: {exc}", "internal_error"
    return FileResult(path=str(path), filename=path.name, status="failed", reason=reason, error_code=code,
                      seconds=round(time.perf_counter() - started, 3))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported when it is read


def cmd_ingest(ctx: Ctx) -> int:
    args = ctx.args
    tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
    files, results = collect_files(args.paths)
    started = time.perf_counter()
    if files:
        _ = ctx.service  # open the database before the progress bar starts
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=ctx.err)
        phases: dict[str, str] = {}  # file in flight -> its current phase (workers update it)
        lock = threading.Lock()

        def ingest(path: Path) -> FileResult:
            def phase(msg: str) -> None:
                with lock:
                    phases[str(path)] = f"{display_filename(path.name)}: {msg}"
                    progress.update(task, description=" | ".join(phases.values()))

            try:
                return ingest_one(ctx, path, tags, phase)
            finally:
                with lock:
                    phases.pop(str(path), None)

        done: list[tuple[int, FileResult]] = []
        with progress:
            task = progress.add_task("starting", total=len(files))
            for index, result in ingest_concurrently(files, ingest, workers=args.workers, size=_file_size):
                done.append((index, result))
                progress.advance(task)
            # Identical bytes twice in one run: the copy that lost the claim saw the other worker's
            # document still processing. Asked again now that every worker is done, it is reported
            # as the duplicate it is (or still in progress, when another process holds it).
            for at, (index, result) in enumerate(done):
                if result.status == "in_progress":
                    done[at] = (index, ingest(files[index]))
            progress.update(task, description="done")
        results.extend(r for _, r in sorted(done, key=lambda d: d[0]))  # in the order given
    elapsed = time.perf_counter() - started
    totals = ingest_totals(results, elapsed)
    if ctx.json:
        ctx.emit_json({"files": [asdict(r) for r in results], "totals": totals})
    else:
        print_ingest_summary(ctx, results, totals)
    return EXIT_FAILED if totals["failed"] else EXIT_OK


def ingest_totals(results: Sequence[FileResult], elapsed: float) -> dict[str, Any]:
    count = {s: sum(1 for r in results if r.status == s) for s in STATUS_LABEL}
    pages = sum(r.pages for r in results if r.status == "ingested")
    chunks = sum(r.chunks for r in results if r.status == "ingested")
    return {"files": len(results), **count, "pages": pages, "chunks": chunks, "seconds": round(elapsed, 2),
            "pages_per_second": round(pages / elapsed, 2) if elapsed > 0 else 0.0}


def print_ingest_summary(ctx: Ctx, results: Sequence[FileResult], totals: dict[str, Any]) -> None:
    table = Table(title="ingest summary", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("status")
    for col in ("pages", "chunks", "seconds"):
        table.add_column(col, justify="right")
    table.add_column("reason", overflow="fold")
    for r in results:
        table.add_row(Text(display_filename(r.filename)), Text(STATUS_LABEL[r.status], style=STATUS_STYLE[r.status]),
                      str(r.pages or ""), str(r.chunks or ""), f"{r.seconds:.2f}",
                      Text(r.reason or ""))
    ctx.out.print(table)
    ctx.out.print(
        f"{totals['files']} file(s): {totals['ingested']} ingested, "
        f"{totals['duplicate']} duplicate (skipped), {totals['in_progress']} in progress, "
        f"{totals['failed']} failed; {totals['pages']} pages, "
        f"{totals['chunks']} chunks in {totals['seconds']:.1f} s ({totals['pages_per_second']:.1f} pages/s)",
        markup=False)


# --- retrieval -----------------------------------------------------------------------------------------


def cmd_query(ctx: Ctx) -> int:
    answer = ctx.service.query(ctx.principal, QueryRequest(query=ctx.args.question, k=ctx.args.k))
    if ctx.json:
        ctx.emit_json(answer)
        return EXIT_OK
    ctx.out.print(answer.answer, markup=False)
    if answer.citations:
        ctx.out.print()
        ctx.out.print("Sources:", style="bold")
        for n, c in enumerate(answer.citations, start=1):
            pages = ", ".join(map(str, c.pages or [c.page]))
            ctx.out.print(f"  [{n}] {c.filename} {'pp.' if len(c.pages) > 1 else 'p.'} {pages}", markup=False)
    ctx.out.print()
    if answer.mode == "extractive":
        ctx.out.print("(extractive answer: sentences quoted from the sources above; "
                      "no language model wrote it)", style="dim", markup=False)
    else:
        ctx.out.print(f"(generated by {answer.model or 'a language model'} from the sources above)",
                      style="dim", markup=False)
    return EXIT_OK


def cmd_search(ctx: Ctx) -> int:
    request = SearchRequest(query=ctx.args.text, k=ctx.args.k, mode=SearchMode(ctx.args.mode))
    response = ctx.service.search(ctx.principal, request)
    if ctx.json:
        ctx.emit_json(response)
        return EXIT_OK
    if not response.results:
        ctx.out.print("no matching passages", markup=False)
        return EXIT_OK
    title = f"{len(response.results)} result(s), {response.mode} search, {response.took_ms:.0f} ms"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("page", justify="right")
    table.add_column("snippet", overflow="fold", ratio=1)
    for rank, hit in enumerate(response.results, start=1):
        page = str(hit.page) if hit.page_end == hit.page else f"{hit.page}-{hit.page_end}"
        table.add_row(str(rank), f"{hit.score:.4f}", Text(hit.filename), page, Text(hit.snippet))
    ctx.out.print(table)
    return EXIT_OK


# --- documents and stats ------------------------------------------------------------------------------


def cmd_docs_list(ctx: Ctx) -> int:
    status = DocumentStatus(ctx.args.status) if ctx.args.status else None
    page = ctx.service.list_documents(ctx.principal, status=status, limit=ctx.args.limit,
                                      offset=ctx.args.offset)
    if ctx.json:
        ctx.emit_json(page)
        return EXIT_OK
    title = f"{len(page.documents)} of {page.total} document(s), tenant {ctx.principal.tenant_id}"
    table = Table(title=title, title_justify="left")
    for col in ("id", "file", "status", "pages", "chunks", "size", "uploaded"):
        numeric = col in ("pages", "chunks", "size")
        table.add_column(col, overflow="fold", justify="right" if numeric else "left")
    for d in page.documents:
        table.add_row(str(d.id), Text(d.filename), Text(d.processing_status.value,
                                                        style=_doc_style(d.processing_status)),
                      str(d.page_count or ""), str(d.chunk_count or ""), _size(d.file_size),
                      d.uploaded_at.strftime("%Y-%m-%d %H:%M"))
    ctx.out.print(table)
    return EXIT_OK


def cmd_docs_show(ctx: Ctx) -> int:
    doc = ctx.service.get_document(ctx.principal, ctx.args.id)
    if ctx.json:
        ctx.emit_json(doc)
        return EXIT_OK
    _print_mapping(ctx, doc.model_dump(mode="json", exclude_none=True), title=doc.filename)
    return EXIT_OK


def cmd_docs_delete(ctx: Ctx) -> int:
    doc = ctx.service.delete_document(ctx.principal, ctx.args.id)
    if ctx.json:
        ctx.emit_json(doc)
    else:
        ctx.out.print(f"deleted {doc.filename} ({doc.id})", markup=False)
    return EXIT_OK


def cmd_stats(ctx: Ctx) -> int:
    stats = ctx.service.stats(ctx.principal)
    if ctx.json:
        ctx.emit_json(stats)
        return EXIT_OK
    _print_mapping(ctx, stats.model_dump(mode="json"), title=f"tenant {ctx.principal.tenant_id}")
    return EXIT_OK


def cmd_reembed(ctx: Ctx) -> int:
    """Re-embed documents whose vectors another embedder variant made (resumable: run it again)."""
    from querio.reembed import ReembedStep

    tenant = None if ctx.args.all else ctx.principal.tenant_id

    def step(s: ReembedStep) -> None:
        _say(f"[{s.done}/{s.total}] {s.tenant_id} {s.filename} ({s.document_id}): {s.chunks} chunks {s.status}")

    report = ctx.service.reembed(tenant_id=tenant, progress=step, limit=ctx.args.limit)
    if ctx.json:
        ctx.emit_json(asdict(report))
    else:
        scope = "all tenants" if tenant is None else f"tenant {tenant}"
        ctx.out.print(f"re-embedded {report.reembedded} of {report.documents} documents ({report.chunks} chunks) of"
                      f" {scope} with {report.variant} in {report.seconds:.1f} s; {report.skipped} skipped"
                      " (changed meanwhile)", markup=False)
    return EXIT_OK


def cmd_serve(ctx: Ctx) -> int:
    from querio.api.local_server import serve

    logging.getLogger("querio.api.local_server").setLevel(logging.INFO)
    serve(ctx.args.host, ctx.args.port, service=ctx.service, tenant=ctx.principal.tenant_id)
    return EXIT_OK


def cmd_cost(ctx: Ctx) -> int:
    """``querio cost --tier X``: the monthly estimate from the tier table (no AWS calls)."""
    from querio.costs import estimate
    from querio.tiers import UnknownTier, get_tier

    try:
        tier = get_tier(ctx.args.tier)
    except UnknownTier as exc:
        raise UsageError(str(exc)) from None
    est = estimate(tier)
    if ctx.json:
        ctx.emit_json({"tier": est.tier, "total_usd": est.total_usd,
                       "lines": [asdict(line) for line in est.lines], "assumptions": list(est.assumptions)})
    else:
        sys.stdout.write(est.render() + "\n")
    return EXIT_OK


def cmd_capacity(ctx: Ctx) -> int:
    """``querio capacity --tier X [--documents N --pages-per-document P]``: need vs provision (no AWS calls)."""
    from querio.capacity import capacity
    from querio.tiers import UnknownTier, get_tier

    try:
        tier = get_tier(ctx.args.tier)
    except UnknownTier as exc:
        raise UsageError(str(exc)) from None
    report = capacity(tier, ctx.args.documents, ctx.args.pages_per_document)
    if ctx.json:
        ctx.emit_json(report.as_dict())
    else:
        sys.stdout.write(report.render() + "\n")
    return EXIT_OK


def _print_mapping(ctx: Ctx, data: dict[str, Any], *, title: str) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        table.add_row(key, Text(shown))
    ctx.out.print(table)


def _doc_style(status: DocumentStatus) -> str:
    return {"completed": "green", "failed": "red"}.get(status.value, "yellow")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# --- parser -----------------------------------------------------------------------------------------------


def _bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return value

    return parse


def _document_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a document id (a UUID)") from None


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the command (SUPPRESS keeps either).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="data directory (sets QUERIO_DATA_DIR; default .querio)")
    common.add_argument("--tenant", default=argparse.SUPPRESS,
                        help="tenant to act as (default QUERIO_LOCAL_TENANT)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more logging on stderr (-vv for debug, with tracebacks)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print machine-readable JSON only on stdout")

    parser = argparse.ArgumentParser(prog="querio", parents=[common],
                                     description="Querio: PDF retrieval (RAG) on your machine.",
                                     epilog="exit codes: 0 ok, 1 error or failed files, 2 usage error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common, as_json], help="ingest PDF files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="PDF files or folders (searched recursively)")
    p.add_argument("--tags", help="comma-separated tags for every file")
    p.add_argument("--workers", type=_bounded_int(1, 64), default=default_workers(),
                   help="files in flight at once (default: one per usable core; 1 = one after another)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("query", parents=[common, as_json], help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("--k", type=_bounded_int(1, 20), default=5, help="passages to draw on (1-20, default 5)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("search", parents=[common, as_json], help="ranked passages for a text")
    p.add_argument("text")
    p.add_argument("--k", type=_bounded_int(1, 50), default=5, help="results (1-50, default 5)")
    p.add_argument("--mode", choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
    p.set_defaults(func=cmd_search)

    docs = sub.add_parser("docs", parents=[common], help="list, show or delete documents")
    docs_sub = docs.add_subparsers(dest="docs_command", required=True, metavar="ACTION")
    p = docs_sub.add_parser("list", parents=[common, as_json], help="list documents, newest first")
    p.add_argument("--status", choices=[s.value for s in DocumentStatus])
    p.add_argument("--limit", type=_bounded_int(1, 1000), default=50)
    p.add_argument("--offset", type=_bounded_int(0, 10**9), default=0)
    p.set_defaults(func=cmd_docs_list)
    p = docs_sub.add_parser("show", parents=[common, as_json], help="one document's metadata")
    p.add_argument("id", type=_document_id)
    p.set_defaults(func=cmd_docs_show)
    p = docs_sub.add_parser("delete", parents=[common, as_json], help="delete a document and its data")
    p.add_argument("id", type=_document_id)
    p.set_defaults(func=cmd_docs_delete)

    p = sub.add_parser("stats", parents=[common, as_json], help="corpus and usage statistics")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("reembed", parents=[common, as_json],
                       help="embed the corpus again with the running embedder (after a model change; resumable)")
    p.add_argument("--all", action="store_true", help="every tenant (default: --tenant / QUERIO_LOCAL_TENANT only)")
    p.add_argument("--limit", type=_bounded_int(1, 10**9), metavar="N", help="stop after N documents")
    p.set_defaults(func=cmd_reembed)

    p = sub.add_parser("serve", parents=[common], help="serve the HTTP API (loopback by default)")
    p.add_argument("--port", type=_bounded_int(0, 65535), default=8000)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback only)")
    p.set_defaults(func=cmd_serve)

    from querio.vectors.commands import add_parser as add_vectors_parser  # issue 5: migrate, verify, reconcile

    add_vectors_parser(sub, common, as_json)

    from querio.fulltext.commands import add_parser as add_fulltext_parser  # issue 15: OpenSearch

    add_fulltext_parser(sub, common, as_json)

    p = sub.add_parser("cost", parents=[common, as_json], help="monthly AWS cost estimate of a deployment tier")
    p.add_argument("--tier", default="small", help="small | mid | enterprise (default small)")
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser("capacity", parents=[common, as_json],
                       help="what N documents need in each store against what a tier provisions")
    p.add_argument("--tier", default="small", help="small | mid | enterprise (default small)")
    p.add_argument("--documents", type=_bounded_int(1, 10**10), default=None,
                   help="documents to size for (default: the top of the tier's range)")
    p.add_argument("--pages-per-document", type=_bounded_int(1, 100_000), default=None,
                   help="pages per document (default: the cost model's, 20)")
    p.set_defaults(func=cmd_capacity)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _say(line: str) -> None:
    """One unwrapped line on stderr (errors must stay greppable one-liners)."""
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR on every start (it falls back to /tmp)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    args = build_parser().parse_args(argv)
    verbosity = getattr(args, "verbose", 0) or 0
    _configure_logging(verbosity)
    if data_dir := getattr(args, "data_dir", None):
        os.environ["QUERIO_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    ctx: Ctx | None = None
    try:
        ctx = Ctx(args)
        return int(args.func(ctx))
    except UsageError as exc:
        _say(f"querio: error: {exc}")
        return EXIT_USAGE
    except ValidationError as exc:  # a request model refused an argument (e.g. an empty query)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "argument"
        _say(f"querio: error: {where}: {first.get('msg')}")
        return EXIT_USAGE
    except QuerioError as exc:
        log.debug("command failed", exc_info=True)
        _say(f"error: {exc.message}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        hint = "" if verbosity >= 2 else " (run with -vv for the traceback)"
        _say(f"error: unexpected {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILED
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
