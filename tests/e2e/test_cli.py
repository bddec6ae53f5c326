"""The ``querio`` command as a user runs it: separate processes, the embedded stack (private
PostgreSQL and blobs in a temporary data directory), the real embedding model.

Every command below runs in its own process, so the data a test reads back was written by
another process and survived its exit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.fixtures.events import multipart_body
from tests.fixtures.pdfs import html_bytes, make_text_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES = [
    "Gardening basics. Tomatoes need full sun, regular watering and a sturdy stake to climb. "
    "Pinch out side shoots so the plant puts its energy into fruit.",
    "Bicycle maintenance. To fix a flat tyre, remove the wheel, lever the tyre off the rim, "
    "find the puncture in the inner tube and apply a rubber patch with glue.",
    "Baking bread. Knead the dough for ten minutes, let it rise until doubled in size, "
    "then bake at two hundred and twenty degrees Celsius for thirty minutes.",
]
OTHER_PAGES = [
    "Astronomy notes. A refracting telescope gathers light with an objective lens, while a "
    "reflecting telescope uses a curved primary mirror to form the image.",
]

Ingest = subprocess.CompletedProcess[str]
_SCRIPT = Path(sys.executable).with_name("querio")
QUERIO = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "querio.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh user shell: no QUERIO_*/Redis settings leak in from the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QUERIO_") and k not in ("REDIS_URL", "POWERTOOLS_DEV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="200")
    env.update(extra)
    return env


def run(*args: str, data_dir: Path | None = None, timeout: float = 600,
        **env: str) -> subprocess.CompletedProcess[str]:
    argv = [*QUERIO, *(["--data-dir", str(data_dir)] if data_dir else []), *args]
    return subprocess.run(argv, env=cli_env(**env), capture_output=True, text=True, timeout=timeout,
                          check=False)


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not JSON (rc {proc.returncode}):\n{proc.stdout}\n--- stderr:\n{proc.stderr}")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two good PDFs (one in a subfolder, upper-case extension), a bad one and
    a text file that a folder scan must skip."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "handbook.pdf").write_bytes(make_text_pdf(PAGES, title="Handbook"))
    (root / "sub").mkdir()
    (root / "sub" / "ASTRONOMY.PDF").write_bytes(make_text_pdf(OTHER_PAGES))
    (root / "broken.pdf").write_bytes(html_bytes())
    (root / "notes.txt").write_text("not a PDF and not picked up by a folder scan")
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("querio-data")


@pytest.fixture(scope="module")
def first_ingest(data_dir: Path, corpus: Path) -> subprocess.CompletedProcess[str]:
    """``querio ingest CORPUS --tags manuals`` into ``data_dir`` (asserted in the first test)."""
    return run("ingest", str(corpus), "--tags", "manuals", data_dir=data_dir)


def test_ingest_folder_reports_good_and_bad_files_and_exits_1(first_ingest: Ingest) -> None:
    proc = first_ingest
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    for line_start, status in (("handbook.pdf", "ingested"), ("ASTRONOMY.PDF", "ingested"),
                               ("broken.pdf", "failed")):
        row = next((line for line in out.splitlines() if line_start in line), "")
        assert status in row, out
    assert "not a PDF" in out and "notes.txt" not in out
    totals = r"3 file\(s\): 2 ingested, 0 duplicate \(skipped\), 0 in progress, 1 failed; 4 pages"
    assert re.search(totals, out), out
    assert "pages/s" in out


def test_identical_files_in_one_run_are_one_document_and_a_duplicate(tmp_path: Path) -> None:
    """Two files in flight with the same bytes: one is ingested, the other reported as its
    duplicate (not "in progress"), whichever worker claims first."""
    folder = tmp_path / "twins"
    folder.mkdir()
    data = make_text_pdf(PAGES, title="Twins")
    for name in ("a.pdf", "b.pdf"):
        (folder / name).write_bytes(data)
    proc = run("ingest", str(folder), "--workers", "2", "--json", data_dir=tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    statuses = sorted(f["status"] for f in as_json(proc)["files"])
    assert statuses == ["duplicate", "ingested"], proc.stdout


def test_ingest_json_is_machine_readable(first_ingest: Ingest, data_dir: Path,
                                         corpus: Path) -> None:
    proc = run("ingest", str(corpus), "--json", data_dir=data_dir)
    assert proc.returncode == 1
    report = as_json(proc)
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    assert by_name["handbook.pdf"]["status"] == "duplicate"
    assert by_name["ASTRONOMY.PDF"]["status"] == "duplicate"
    bad = by_name["broken.pdf"]
    assert bad["status"] == "failed" and bad["error_code"] == "not_a_pdf" and "not a PDF" in bad["reason"]
    assert report["totals"]["failed"] == 1 and report["totals"]["duplicate"] == 2


def test_data_survives_into_another_process(first_ingest: Ingest, data_dir: Path) -> None:
    proc = run("docs", "list", "--json", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    listing = as_json(proc)
    docs = {d["filename"]: d for d in listing["documents"]}
    assert listing["total"] == 3
    assert docs["handbook.pdf"]["processing_status"] == "completed"
    assert docs["handbook.pdf"]["page_count"] == 3
    assert docs["handbook.pdf"]["tags"] == ["manuals"]
    assert docs["broken.pdf"]["processing_status"] == "failed"

    table = run("docs", "list", data_dir=data_dir)
    assert table.returncode == 0 and "handbook.pdf" in table.stdout and "completed" in table.stdout


def test_query_prints_the_answer_and_citations(first_ingest: Ingest,
                                               data_dir: Path) -> None:
    proc = run("query", "How do I repair a punctured inner tube?", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "[1] handbook.pdf p. 2" in proc.stdout
    assert "extractive" in proc.stdout
    assert "puncture" in proc.stdout.split("Sources:")[0]


def test_search_and_stats(first_ingest: Ingest, data_dir: Path) -> None:
    proc = run("search", "telescope mirror", "--k", "3", "--mode", "hybrid", "--json", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    top = as_json(proc)["results"][0]
    assert (top["filename"], top["page"]) == ("ASTRONOMY.PDF", 1)

    table = run("search", "how long to knead bread dough", data_dir=data_dir)
    assert table.returncode == 0 and "handbook.pdf" in table.stdout

    stats = run("stats", "--json", data_dir=data_dir)
    assert stats.returncode == 0
    assert as_json(stats)["documents"] == 3


def test_vectors_index_builds_each_big_tenants_own_index_once(first_ingest: Ingest, data_dir: Path) -> None:
    """``querio vectors index``: the local tenant (4 chunks) passes a 2-row threshold and gets its
    own HNSW index, which the next search plans with; a second run has nothing to do."""
    proc = run("vectors", "index", "--min-rows", "2", "--json", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc) == {"built": ["local"], "min_rows": 2}
    again = run("vectors", "index", "--min-rows", "2", "--json", data_dir=data_dir)
    assert as_json(again)["built"] == []
    search = run("search", "telescope mirror", "--k", "1", "--mode", "vector", "--json", data_dir=data_dir)
    assert as_json(search)["results"][0]["filename"] == "ASTRONOMY.PDF"
    assert run("vectors", "index", "--min-rows", "0", data_dir=data_dir).returncode == 1


def test_show_and_delete_a_document(first_ingest: Ingest, data_dir: Path,
                                    tmp_path: Path) -> None:
    # a document of its own, in another tenant, so the other tests' data stays as it was
    pdf = tmp_path / "scratch.pdf"
    pdf.write_bytes(make_text_pdf(["Scratch document about knitting a woollen scarf with two needles."]))
    ingested = as_json(run("--tenant", "scratch", "ingest", str(pdf), "--json", data_dir=data_dir))
    doc_id = ingested["files"][0]["document_id"]

    shown = run("docs", "show", doc_id, "--tenant", "scratch", data_dir=data_dir)
    assert shown.returncode == 0 and "scratch.pdf" in shown.stdout
    # invisible to the default tenant
    hidden = run("docs", "show", doc_id, data_dir=data_dir)
    assert hidden.returncode == 1 and "Traceback" not in hidden.stderr

    deleted = run("docs", "delete", doc_id, "--tenant", "scratch", data_dir=data_dir)
    assert deleted.returncode == 0 and f"deleted scratch.pdf ({doc_id})" in deleted.stdout
    after = as_json(run("--tenant", "scratch", "docs", "list", "--json", data_dir=data_dir))
    assert after["total"] == 0


# --- errors: fast, no database needed --------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["search", "x", "--k", "500"],
    ["query", "x", "--k", "0"],
    ["search", "x", "--mode", "fuzzy"],
    ["docs", "show", "not-a-uuid"],
    ["docs"],
])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = run(*args, data_dir=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_invalid_tenant_is_a_usage_error(tmp_path: Path) -> None:
    proc = run("--tenant", "../etc", "stats", data_dir=tmp_path)
    assert proc.returncode == 2 and "invalid tenant id" in proc.stderr


def test_configuration_error_names_the_setting(tmp_path: Path) -> None:
    proc = run("stats", data_dir=tmp_path, QUERIO_CHUNK_SIZE="10")
    assert proc.returncode == 1
    assert "QUERIO_CHUNK_SIZE" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_paths_are_reported_not_raised(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("ingest", str(tmp_path / "nope.pdf"), str(empty), "--json", data_dir=tmp_path / "data")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    reasons = {Path(f["path"]).name: f["reason"] for f in as_json(proc)["files"]}
    assert reasons == {"nope.pdf": "no such file or folder", "empty": "no PDF files in this folder"}


# --- querio serve -------------------------------------------------------------------------------------------


class Served(NamedTuple):
    url: str
    log: Path


@pytest.fixture(scope="module")
def served(first_ingest: Ingest, data_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``querio serve --port 0`` on the ingested data, with a 300 kB upload limit."""
    log_path = tmp_path_factory.mktemp("serve") / "stderr.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*QUERIO, "--data-dir", str(data_dir), "serve", "--port", "0"],
                                env=cli_env(QUERIO_MAX_FILE_BYTES="300000"), stdout=subprocess.PIPE,
                                stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the service is warm
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"unexpected first line {line!r}; stderr:\n{log_path.read_text()}"
        yield Served(match.group(1), log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, "serve did not stop cleanly on SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(raw) if raw else None


def test_serve_answers_the_api_over_http(served: Served) -> None:
    server = served.url
    status, _, health = http("GET", f"{server}/api/health")
    assert status == 200 and health["status"] == "ok"

    started = time.perf_counter()
    query = json.dumps({"query": "flat tyre", "k": 10}).encode()
    status, _, found = http("POST", f"{server}/api/search", query, {"Content-Type": "application/json"})
    assert status == 200 and time.perf_counter() - started < 5  # warm: no model load on first query
    assert found["results"][0]["filename"] == "handbook.pdf" and found["results"][0]["page"] == 2

    status, _, docs = http("GET", f"{server}/api/documents?status=completed&limit=5")
    assert status == 200 and docs["total"] == 2 and docs["limit"] == 5

    pdf = make_text_pdf(["Served over HTTP: sourdough starters need daily feeding."])
    body, ctype = multipart_body({"file": ("served.pdf", pdf, "application/pdf")}, {"tags": "http"})
    status, _, up = http("POST", f"{server}/api/documents", body, {"Content-Type": ctype})
    assert status == 201 and up["outcome"]["document"]["tags"] == ["http"]

    status, headers, err = http("GET", f"{server}/api/documents/{uuid.uuid4()}")
    assert status == 404 and err["error"]["code"] == "not_found"
    assert err["error"]["request_id"] == headers["x-request-id"]
    # one log line per request, on stderr
    assert re.search(r"127\.0\.0\.1 GET /api/health 200 \d+B [\d.]+ms", served.log.read_text())


def test_serve_refuses_oversized_bodies_before_reading_them(served: Served) -> None:
    server = served.url
    body, ctype = multipart_body({"file": ("big.pdf", b"%PDF-1.4\n" + b"0" * 500_000, "application/pdf")})
    status, _, err = http("POST", f"{server}/api/documents", body, {"Content-Type": ctype})
    assert status == 413 and err["error"]["code"] == "payload_too_large"
    # the server is still fine afterwards
    assert http("GET", f"{server}/api/health")[0] == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_serve_refuses_before_100_continue(served: Served, tmp_path: Path) -> None:
    server = served.url
    big = tmp_path / "big.bin"
    big.write_bytes(b"0" * 2_000_000)
    proc = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Expect: 100-continue",
                           "-F", f"file=@{big};type=application/pdf", f"{server}/api/documents"],
                          capture_output=True, text=True, timeout=60, check=False)
    body, code = proc.stdout.rsplit("\n", 1)
    assert code == "413" and json.loads(body)["error"]["code"] == "payload_too_large"


def test_reembed_after_a_model_change(tmp_path: Path, corpus: Path) -> None:
    """A corpus ingested with the fp32 model is refused by the shipped (int8) one until
    `querio reembed` converts it; the command reports progress and is a no-op when re-run."""
    data = tmp_path / "data"
    pdf = corpus / "handbook.pdf"
    assert run("ingest", str(pdf), data_dir=data, QUERIO_MODEL_PRECISION="fp32").returncode == 0

    refused = run("search", "fix a flat tyre", data_dir=data)
    assert refused.returncode == 1
    assert "querio reembed" in refused.stderr and "all-MiniLM-L6-v2/fp32" in refused.stderr

    done = run("reembed", data_dir=data)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\[1/1\] \S+ handbook\.pdf \(.*\): \d+ chunks reembedded", done.stderr), done.stderr
    assert "re-embedded 1 of 1 documents" in done.stdout
    again = as_json(run("reembed", "--all", "--json", data_dir=data))
    assert (again["documents"], again["reembedded"]) == (0, 0)
    found = run("search", "fix a flat tyre", "--json", data_dir=data)
    assert found.returncode == 0 and as_json(found)["results"][0]["page"] == 2
