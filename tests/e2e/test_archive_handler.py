"""The archive Lambda and the presigned/restore service methods against moto S3 and real
PostgreSQL: archive after N idle days, restore, purge after retention, re-runs are no-ops,
a cut-off run resumes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from querio.archive import run_archive
from querio.config import Settings
from querio.errors import Conflict, NotFound, PayloadTooLarge
from querio.models import Document, Principal, SearchRequest
from querio.service import QuerioService
from querio.wiring import build_service
from tests.fixtures.aws_events import TEST_BUCKET, aws, lambda_context, scheduled_event  # noqa: F401
from tests.fixtures.pdfs import SAMPLE_PAGES, make_text_pdf
from tests.fixtures.service import make_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ALICE = Principal(tenant_id="tenant-a", user_id="alice")
BOB = Principal(tenant_id="tenant-b", user_id="bob")


@pytest.fixture
def svc(aws: Any, tmp_path: Path, pg_dsn: str) -> Iterator[QuerioService]:  # noqa: F811
    settings: Settings = make_settings(tmp_path / "data", pg_dsn, blob_backend="s3", s3_bucket=TEST_BUCKET,
                                       archive_after_days=90, purge_after_days=30)
    service = build_service(settings)
    try:
        yield service
    finally:
        service.close()


def add(svc: QuerioService, who: Principal, marker: str) -> Document:
    outcome = svc.ingest(who, make_text_pdf([f"{marker} {SAMPLE_PAGES[0]}", SAMPLE_PAGES[1]]), f"{marker}.pdf")
    assert outcome.status == "ingested" and outcome.document is not None
    return outcome.document


def age(dsn: str, doc: Document, *, uploaded_days: int | None = None, accessed_days: int | None = None,
        deleted_days: int | None = None) -> None:
    """Move a document's timestamps into the past (test set-up only)."""
    sets = []
    if uploaded_days is not None:
        sets.append(f"uploaded_at = now() - interval '{int(uploaded_days)} days'")
    if accessed_days is not None:
        sets.append(f"accessed_at = now() - interval '{int(accessed_days)} days'")
    if deleted_days is not None:
        sets.append(f"deleted_at = now() - interval '{int(deleted_days)} days'")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE documents SET {', '.join(sets)} WHERE id = %s", (doc.id,))


def s3_class(s3: Any, key: str) -> str:
    return s3.head_object(Bucket=TEST_BUCKET, Key=key).get("StorageClass", "STANDARD")


def test_archive_restore_download_and_rerun(svc: QuerioService, aws: Any, pg_dsn: str) -> None:  # noqa: F811
    from functions.archive import handler

    idle = add(svc, ALICE, "idle")
    read_lately = add(svc, ALICE, "readlately")
    fresh = add(svc, BOB, "fresh")
    age(pg_dsn, idle, uploaded_days=200)
    age(pg_dsn, read_lately, uploaded_days=200, accessed_days=10)
    handler.set_service_factory(lambda: svc)
    try:
        report = handler.lambda_handler(scheduled_event(), lambda_context())
        assert report["archived"] == 1 and report["purged"] == 0 and report["complete"] and not report["errors"]
        again = handler.lambda_handler(scheduled_event(), lambda_context())
        assert again["archived"] == 0 and again["complete"]  # re-run: no-op
    finally:
        handler.set_service_factory(None)

    doc = svc.get_document(ALICE, idle.id)
    assert doc.storage_class == "GLACIER" and doc.archived_at is not None
    assert s3_class(aws, idle.storage_path) == "GLACIER"
    for other, who in ((read_lately, ALICE), (fresh, BOB)):
        assert svc.get_document(who, other.id).storage_class == "STANDARD"
        assert s3_class(aws, other.storage_path) == "STANDARD"
    # archived documents stay searchable (chunks live in PostgreSQL)
    hits = svc.search(ALICE, SearchRequest(query="idle portable graphing utility", k=10)).results
    assert idle.id in {h.document_id for h in hits}

    # download: refused until restored; restore is idempotent and tenant-scoped
    with pytest.raises(Conflict):
        svc.create_download_url(ALICE, idle.id)
    with pytest.raises(NotFound):
        svc.restore_document(BOB, idle.id)
    assert svc.restore_document(ALICE, idle.id).id == idle.id
    assert svc.restore_document(ALICE, idle.id).id == idle.id
    assert svc.blobs.restore_status(idle.storage_path) in ("ongoing", "available")
    if svc.blobs.restore_status(idle.storage_path) == "available":  # moto restores at once
        link = svc.create_download_url(ALICE, idle.id)
        assert idle.storage_path in link["url"] and link["expires_in"] == svc.DOWNLOAD_URL_EXPIRES_S
    link = svc.create_download_url(BOB, fresh.id)
    assert "X-Amz-Signature" in link["url"]
    with pytest.raises(NotFound):
        svc.create_download_url(BOB, read_lately.id)


def test_purge_after_retention(svc: QuerioService, aws: Any, pg_dsn: str) -> None:  # noqa: F811
    old = add(svc, ALICE, "olddelete")
    recent = add(svc, ALICE, "recentdelete")
    svc.delete_document(ALICE, old.id, purge=False)
    svc.delete_document(ALICE, recent.id, purge=False)
    age(pg_dsn, old, deleted_days=40)
    age(pg_dsn, recent, deleted_days=5)
    report = run_archive(svc)
    assert report.purged == 1 and report.complete
    with psycopg.connect(pg_dsn) as conn:
        rows = dict(conn.execute("SELECT id, (SELECT count(*) FROM document_chunks c WHERE c.document_id = d.id)"
                                 " FROM documents d").fetchall())
    assert old.id not in rows and rows[recent.id] > 0
    assert aws.list_objects_v2(Bucket=TEST_BUCKET, Prefix=old.storage_path).get("KeyCount") == 0
    assert aws.list_objects_v2(Bucket=TEST_BUCKET, Prefix=recent.storage_path).get("KeyCount") == 1
    assert run_archive(svc).purged == 0  # re-run: no-op
    # later, the retention has passed for the other one too
    assert run_archive(svc, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=26)).purged == 1


def test_cut_off_run_resumes(svc: QuerioService, aws: Any, pg_dsn: str) -> None:  # noqa: F811
    docs = [add(svc, ALICE, f"doc{i}") for i in range(3)]
    for d in docs:
        age(pg_dsn, d, uploaded_days=100)
    budget = iter([60_000, 60_000, 60_000, 60_000, 1_000])  # time runs out after the first document
    first = run_archive(svc, time_left_ms=lambda: next(budget, 0), batch_size=1)
    assert not first.complete and first.archived == 1
    second = run_archive(svc, time_left_ms=lambda: 600_000, batch_size=1)
    assert second.complete and second.archived == 2
    assert all(s3_class(aws, d.storage_path) == "GLACIER" for d in docs)
    assert run_archive(svc).archived == 0
    # an almost expired invocation does nothing and says so
    assert run_archive(svc, time_left_ms=lambda: 10).complete is False


def test_missing_blob_is_reported_and_skipped(svc: QuerioService, aws: Any, pg_dsn: str) -> None:  # noqa: F811
    lost, fine = add(svc, ALICE, "lost"), add(svc, ALICE, "fine")
    for d in (lost, fine):
        age(pg_dsn, d, uploaded_days=100)
    aws.delete_object(Bucket=TEST_BUCKET, Key=lost.storage_path)
    report = run_archive(svc)
    assert report.archived == 1 and [e["document_id"] for e in report.errors] == [str(lost.id)]
    assert svc.get_document(ALICE, lost.id).storage_class == "STANDARD"


def test_upload_url_never_uses_the_filename(svc: QuerioService) -> None:
    out = svc.create_upload_url(ALICE, "../../tenant-b/uploads/evil.pdf", 2048)
    key = out["key"]
    assert key.startswith("tenants/tenant-a/uploads/") and key.endswith(".pdf")
    uuid.UUID(key.rsplit("/", 1)[-1].removesuffix(".pdf"))
    assert "evil" not in key and "X-Amz-Signature" in out["url"] and out["expires_in"] == svc.UPLOAD_URL_EXPIRES_S
    assert out["headers"]["Content-Type"] == "application/pdf" and out["filename"] == "evil.pdf"
    with pytest.raises(PayloadTooLarge):
        svc.create_upload_url(ALICE, "big.pdf", svc.settings.max_file_bytes + 1)
    # what the upload's notification does next: the key parses back to the caller's tenant
    from querio.ingest.events import parse_upload_key

    assert parse_upload_key(key)[0] == "tenant-a"


def test_the_tier_schedule_fires_the_archive_through_eventbridge(svc: QuerioService, aws: Any,  # noqa: F811
                                                                  pg_dsn: str) -> None:
    """EventBridge (moto): the tier's daily rule accepts the schedule, and a Scheduled Event routed by
    a rule reaches the archive handler in the shape EventBridge delivers it."""
    import json

    from functions.archive import handler
    from querio.adapters import aws_clients
    from querio.tiers import get_tier

    events, sqs = aws_clients._client("events"), aws_clients.sqs()
    schedule = get_tier("small").archive.schedule_expression
    events.put_rule(Name="querio-archive-daily", ScheduleExpression=schedule, State="ENABLED")
    assert events.describe_rule(Name="querio-archive-daily")["ScheduleExpression"] == "cron(0 3 * * ? *)"
    # moto does not run schedules: deliver the same Scheduled Event through a pattern rule into a queue
    queue_url = sqs.create_queue(QueueName="archive-invocations")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="capture", EventPattern=json.dumps({"detail-type": ["Scheduled Event"]}))
    events.put_targets(Rule="capture", Targets=[{"Id": "q", "Arn": queue_arn}])
    sent = scheduled_event()
    entry = {"Source": sent["source"], "DetailType": sent["detail-type"], "Detail": "{}",
             "Resources": sent["resources"]}
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    delivered = json.loads(message["Body"])
    assert delivered["detail-type"] == "Scheduled Event" and delivered["resources"] == sent["resources"]

    idle = add(svc, ALICE, "scheduled")
    age(pg_dsn, idle, uploaded_days=400)
    handler.set_service_factory(lambda: svc)
    try:
        report = handler.lambda_handler(delivered, lambda_context())
    finally:
        handler.set_service_factory(None)
    assert report["archived"] == 1 and report["complete"]
    assert svc.get_document(ALICE, idle.id).storage_class == "GLACIER"


def test_the_archive_copy_never_retriggers_ingest(svc: QuerioService, aws: Any, pg_dsn: str,  # noqa: F811
                                                  capsys: Any) -> None:
    """The archive's in-place copy to GLACIER emits ``ObjectCreated:Copy`` for an upload key:
    acknowledged as a no-op, without a GetObject (it would fail: archived, not restored) and
    without a failure metric. Also in the shape S3 sends under SSE-KMS, where a copy gets a
    new ETag: the ``sha256`` metadata the copy carries identifies the bytes (a HEAD)."""
    from functions.archive import handler as archive_handler
    from functions.ingest import handler as ingest_handler
    from querio.adapters import aws_clients
    from tests.fixtures.aws_events import object_event, s3_notification, sqs_event

    key = f"tenants/tenant-a/uploads/{uuid.uuid4()}.pdf"  # a presigned upload: no metadata of ours
    aws.put_object(Bucket=TEST_BUCKET, Key=key, Body=make_text_pdf([f"pangolin {SAMPLE_PAGES[0]}"]),
                   ContentType="application/pdf")
    gets: list[str] = []
    aws_clients.s3().meta.events.register("provide-client-params.s3.GetObject",
                                          lambda params, **_: gets.append(params["Key"]))
    ingest_handler.set_service_factory(lambda: svc)
    archive_handler.set_service_factory(lambda: svc)
    try:
        ingest = ingest_handler.lambda_handler(sqs_event(object_event(aws, key)), lambda_context())
        assert ingest["batchItemFailures"] == []
        [doc] = svc.list_documents(ALICE).documents
        age(pg_dsn, doc, uploaded_days=200)
        assert archive_handler.lambda_handler(scheduled_event(), lambda_context())["archived"] == 1
        assert s3_class(aws, key) == "GLACIER"
        capsys.readouterr()
        assert gets == [key]  # the hook sees the ingest's read
        gets.clear()
        copy = object_event(aws, key, event="ObjectCreated:Copy")
        kms_copy = s3_notification(TEST_BUCKET, key, event="ObjectCreated:Copy", etag=uuid.uuid4().hex)
        result = ingest_handler.lambda_handler(sqs_event(copy, kms_copy, copy), lambda_context())
    finally:
        ingest_handler.set_service_factory(None)
        archive_handler.set_service_factory(None)
    assert result["batchItemFailures"] == []
    assert gets == []  # recognised without reading the (archived) bytes
    out = capsys.readouterr().out
    assert '"IngestFailures"' not in out and '"IngestSkipped"' in out
    [after] = svc.list_documents(ALICE).documents
    assert after.id == doc.id and after.storage_class == "GLACIER" and after.processing_status == "completed"
    assert {h.document_id for h in svc.search(ALICE, SearchRequest(query="pangolin", mode="text")).results} == {doc.id}
