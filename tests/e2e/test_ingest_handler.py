"""The ingest Lambda end to end: moto S3 + SQS events → handler → real PostgreSQL.

Nothing of ours is mocked: the service is built by ``wiring.build_service`` with the S3
blob store on moto, real PostgreSQL (``pg_dsn``) and the real embedding model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from querio.adapters import aws_clients
from querio.adapters.postgres.store import PostgresDocumentStore
from querio.adapters.s3_blobs import S3BlobStore
from querio.config import Settings
from querio.errors import NotFound
from querio.models import DocumentStatus, Principal, QueryRequest, SearchRequest
from querio.service import QuerioService
from querio.wiring import build_service
from tests.fixtures.aws_events import (  # noqa: F401  (aws is a fixture)
    TEST_BUCKET,
    aws,
    drain_queue,
    lambda_context,
    object_event,
    parts_ingest_handler,
    s3_notification,
    s3_test_event,
    sqs_event,
    sqs_record,
)
from tests.fixtures.pdfs import SAMPLE_PAGES, corrupt_pdf, make_text_pdf
from tests.fixtures.service import make_settings
from tests.pinecone_standin.fixture import API_KEY, INDEX, pinecone_standin  # noqa: F401
from tests.pinecone_standin.server import StandinServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TENANT = "tenant-a"
ALICE = Principal(tenant_id=TENANT, user_id="alice")


@pytest.fixture
def s3_settings(tmp_path: Path, pg_dsn: str) -> Settings:
    return make_settings(tmp_path / "data", pg_dsn, blob_backend="s3", s3_bucket=TEST_BUCKET)


@pytest.fixture
def handler(aws: Any, s3_settings: Settings) -> Iterator[Any]:  # noqa: F811
    from functions.ingest import handler as ingest_handler

    service = build_service(s3_settings)
    ingest_handler.set_service_factory(lambda: service)
    ingest_handler.service = service  # type: ignore[attr-defined]  (handy in tests)
    try:
        yield ingest_handler
    finally:
        ingest_handler.set_service_factory(None)
        service.close()


def upload(s3: Any, data: bytes, tenant: str = TENANT, name: str | None = None) -> str:
    key = f"tenants/{tenant}/uploads/{name or uuid.uuid4()}.pdf"
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=data, ContentType="application/pdf")
    return key


def run(handler: Any, *bodies: str | dict[str, Any]) -> dict[str, Any]:
    return handler.lambda_handler(sqs_event(*bodies), lambda_context())


def failures(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def docs(service: QuerioService, tenant: str = TENANT) -> list[Any]:
    return service.documents.list_documents(tenant, limit=100)[0]


def test_object_created_is_ingested_and_searchable(handler: Any, aws: Any, capsys: Any) -> None:  # noqa: F811
    key = upload(aws, make_text_pdf(SAMPLE_PAGES, title="Gnuplot notes"))
    result = run(handler, s3_notification(TEST_BUCKET, key))
    assert failures(result) == []
    [doc] = docs(handler.service)
    assert doc.processing_status == DocumentStatus.COMPLETED
    assert doc.storage_type == "s3" and doc.storage_path == key  # points at the upload, no copy
    assert handler.service.documents.find_by_s3_key(TENANT, TEST_BUCKET, key).id == doc.id
    hits = handler.service.search(ALICE, SearchRequest(query="portable command-line graphing utility")).results
    assert hits and hits[0].document_id == doc.id
    # another tenant sees nothing
    other = Principal(tenant_id="tenant-b", user_id="bob")
    assert handler.service.search(other, SearchRequest(query="graphing utility")).results == []
    out = capsys.readouterr().out
    assert '"DocumentsIngested"' in out and '"ChunksIngested"' in out and '"Querio"' in out


def test_key_with_spaces_is_url_decoded(handler: Any, aws: Any) -> None:  # noqa: F811
    key = upload(aws, make_text_pdf(SAMPLE_PAGES), name="my manual (v2)")
    assert failures(run(handler, s3_notification(TEST_BUCKET, key))) == []
    [doc] = docs(handler.service)
    assert doc.storage_path == key


def test_partial_batch_failure_lists_only_the_bad_record(handler: Any, aws: Any) -> None:  # noqa: F811
    good = sqs_record(s3_notification(TEST_BUCKET, upload(aws, make_text_pdf(SAMPLE_PAGES))))
    poison = sqs_record("this is not json")
    bad_shape = sqs_record(json.dumps({"hello": "world"}))
    result = run(handler, good, poison, bad_shape)
    assert sorted(failures(result)) == sorted([poison["messageId"], bad_shape["messageId"]])
    assert len(docs(handler.service)) == 1


def test_bad_pdf_is_acknowledged_and_recorded_failed(handler: Any, aws: Any, capsys: Any) -> None:  # noqa: F811
    key = upload(aws, corrupt_pdf())
    assert failures(run(handler, s3_notification(TEST_BUCKET, key))) == []
    [doc] = docs(handler.service)
    assert doc.processing_status == DocumentStatus.FAILED and doc.error_code == "corrupt_pdf"
    out = capsys.readouterr().out
    assert '"IngestFailures"' in out and '"corrupt_pdf"' in out


def test_duplicate_delivery_gives_one_document(handler: Any, aws: Any) -> None:  # noqa: F811
    key = upload(aws, make_text_pdf(SAMPLE_PAGES))
    body = s3_notification(TEST_BUCKET, key)
    assert failures(run(handler, body)) == []
    assert failures(run(handler, body, body)) == []
    [doc] = docs(handler.service)
    assert doc.processing_status == DocumentStatus.COMPLETED
    # the same bytes under another key: still one document, the redundant object is removed
    key2 = upload(aws, make_text_pdf(SAMPLE_PAGES))
    assert failures(run(handler, s3_notification(TEST_BUCKET, key2))) == []
    assert [d.id for d in docs(handler.service)] == [doc.id]
    assert aws.list_objects_v2(Bucket=TEST_BUCKET, Prefix=key2).get("KeyCount") == 0
    # ... and its ObjectRemoved matches nothing
    assert failures(run(handler, s3_notification(TEST_BUCKET, key2, event="ObjectRemoved:Delete"))) == []
    assert [d.id for d in docs(handler.service)] == [doc.id]


def test_object_removed_deletes_the_document(handler: Any, aws: Any) -> None:  # noqa: F811
    key = upload(aws, make_text_pdf(SAMPLE_PAGES))
    run(handler, s3_notification(TEST_BUCKET, key))
    [doc] = docs(handler.service)
    aws.delete_object(Bucket=TEST_BUCKET, Key=key)
    removed = s3_notification(TEST_BUCKET, key, event="ObjectRemoved:Delete")
    assert failures(run(handler, removed)) == []
    with pytest.raises(NotFound):
        handler.service.get_document(ALICE, doc.id)
    assert handler.service.search(ALICE, SearchRequest(query="graphing utility")).results == []
    assert failures(run(handler, removed)) == []  # redelivery: idempotent
    # another tenant's remove event for the same name never touches tenant-a
    key_b = key.replace(f"tenants/{TENANT}/", "tenants/tenant-b/")
    assert failures(run(handler, s3_notification(TEST_BUCKET, key_b, event="ObjectRemoved:Delete"))) == []


def test_test_event_non_pdf_and_hostile_keys_are_ignored(handler: Any, aws: Any) -> None:  # noqa: F811
    data = make_text_pdf(SAMPLE_PAGES)
    hostile = [
        f"tenants/{TENANT}/uploads/../../tenant-b/uploads/x.pdf",
        "tenants/../uploads/x.pdf",
        "tenants/tenant-a'; DROP TABLE documents;--/uploads/x.pdf",
        "tenants/tenant-a/uploads/sub/dir/x.pdf",
        "tenants/tenant-a/uploads/x\x00.pdf",
        "tenants/tenant-a/uploads/..pdf",
        "tenants/tenant-a/uploads/notes.txt",
        "tenants/tenant-a/documents/ab/cd/x.pdf",
        "/tenants/tenant-a/uploads/x.pdf",
        "other/prefix/x.pdf",
    ]
    bodies = [s3_test_event(TEST_BUCKET)]
    for key in hostile:
        bodies.append(s3_notification(TEST_BUCKET, key))
    # the encoded form of a traversal must not decode into a valid key either
    bodies.append(s3_notification(TEST_BUCKET, "tenants/tenant-a/uploads/..%2F..%2Ftenant-b%2Fx.pdf", encode=False))
    # a bucket that is not ours
    aws.create_bucket(Bucket="someone-elses")
    aws.put_object(Bucket="someone-elses", Key=f"tenants/{TENANT}/uploads/a.pdf", Body=data)
    bodies.append(s3_notification("someone-elses", f"tenants/{TENANT}/uploads/a.pdf"))
    assert failures(run(handler, *bodies)) == []
    for tenant in (TENANT, "tenant-b", "..", "tenant-a'; DROP TABLE documents;--"):
        assert docs(handler.service, tenant) == []


def test_s3_unavailable_is_retried_and_nothing_is_written(handler: Any, aws: Any, s3_settings: Settings) -> None:  # noqa: F811
    import boto3
    from botocore.config import Config

    key = upload(aws, make_text_pdf(SAMPLE_PAGES))
    dead = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}))
    real = handler.service
    broken = QuerioService(settings=s3_settings, documents=real.documents, vectors=real.vectors,
                           blobs=S3BlobStore(TEST_BUCKET, lambda: dead), cache=real.cache,
                           embedder=lambda: real.embedder, answerer=lambda e: real.answerer)
    handler.set_service_factory(lambda: broken)
    record = sqs_record(s3_notification(TEST_BUCKET, key))
    assert failures(run(handler, record)) == [record["messageId"]]
    assert docs(real) == []
    # the retry, with S3 back, succeeds
    handler.set_service_factory(lambda: real)
    assert failures(run(handler, record)) == []
    assert len(docs(real)) == 1


def test_database_unavailable_is_retried_and_nothing_is_written(handler: Any, aws: Any,  # noqa: F811
                                                               s3_settings: Settings) -> None:
    key = upload(aws, make_text_pdf(SAMPLE_PAGES))
    real = handler.service
    down = PostgresDocumentStore("host=127.0.0.1 port=9 dbname=querio user=querio", connect_timeout_s=1)
    broken = QuerioService(settings=s3_settings, documents=down, vectors=real.vectors, blobs=real.blobs,
                           cache=real.cache, embedder=lambda: real.embedder, answerer=lambda e: real.answerer)
    handler.set_service_factory(lambda: broken)
    record = sqs_record(s3_notification(TEST_BUCKET, key))
    try:
        assert failures(run(handler, record)) == [record["messageId"]]
    finally:
        down.close()
    assert docs(real) == []
    handler.set_service_factory(lambda: real)
    assert failures(run(handler, record)) == []
    assert docs(real)[0].processing_status == DocumentStatus.COMPLETED


def test_poison_message_is_retried_then_dead_lettered(handler: Any, aws: Any) -> None:  # noqa: F811
    """The queue's redrive policy with the handler's partial batch responses, as the event
    source mapping drives them: failed records become visible again; after maxReceiveCount
    receipts SQS moves them to the DLQ, while good records are deleted after one receipt."""
    sqs = aws_clients.sqs()
    dlq_url = sqs.create_queue(QueueName="querio-ingest-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="querio-ingest", Attributes={
        "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    sqs.send_message(QueueUrl=url, MessageBody=s3_notification(TEST_BUCKET, upload(aws, make_text_pdf(SAMPLE_PAGES))))
    for _ in range(6):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                   AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        if not msgs:
            continue
        event = sqs_event(*[sqs_record(m["Body"], message_id=m["MessageId"],
                                       receive_count=int(m["Attributes"]["ApproximateReceiveCount"]))
                            for m in msgs])
        failed = set(failures(handler.lambda_handler(event, lambda_context())))
        for m in msgs:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["{not json"]
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    assert len(docs(handler.service)) == 1


# --- large PDFs: page-range parts ------------------------------------------------------------------


def _page_text(n: int) -> str:
    return (f"Chapter {n}. The marker word quokka{n} appears only on page {n} of this manual. "
            + SAMPLE_PAGES[n % len(SAMPLE_PAGES)])


@pytest.fixture
def parts_handler(aws: Any, tmp_path: Path, pg_dsn: str) -> Iterator[tuple[Any, str]]:  # noqa: F811
    with parts_ingest_handler(tmp_path / "data", pg_dsn, queue="querio-ingest-parts", pages_per_part=10) as wired:
        yield wired


def _drain(url: str) -> list[dict[str, Any]]:
    return drain_queue(url, queue="querio-ingest-parts")


def test_large_pdf_is_split_into_parts_and_assembled(parts_handler: tuple[Any, str], aws: Any,  # noqa: F811
                                                     pg_dsn: str) -> None:
    import psycopg

    handler, url = parts_handler
    service = handler.service
    key = upload(aws, make_text_pdf([_page_text(n) for n in range(1, 36)], title="Big manual"))
    assert failures(run(handler, s3_notification(TEST_BUCKET, key))) == []
    [doc] = docs(service)
    assert doc.processing_status == DocumentStatus.PROCESSING
    parts = _drain(url)
    bodies = [json.loads(p["body"]) for p in parts]
    assert sorted((b["page_from"], b["page_to"]) for b in bodies) == [(1, 10), (11, 20), (21, 30), (31, 35)]
    assert {b["tenant_id"] for b in bodies} == {TENANT} and {b["document_id"] for b in bodies} == {str(doc.id)}

    # parts run in any order, one invocation each; nothing is searchable before the last
    last_first = sorted(parts, key=lambda p: -json.loads(p["body"])["part_no"])
    for record in last_first[:-1]:
        assert failures(run(handler, record)) == []
        assert service.search(ALICE, SearchRequest(query="quokka33", mode="text")).results == []
    run(handler, last_first[0])  # a redelivered part is acknowledged and changes nothing
    assert failures(run(handler, last_first[-1])) == []
    done = service.get_document(ALICE, doc.id)
    assert done.processing_status == DocumentStatus.COMPLETED
    assert done.page_count == 35 and done.title == "Big manual" and done.chunk_count >= 35
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT chunk_index, page_number FROM document_chunks WHERE document_id = %s",
                            (doc.id,)).fetchall()
    assert len(rows) == done.chunk_count == len({r[0] for r in rows})
    assert {r[1] for r in rows} == set(range(1, 36))
    for n in (1, 10, 11, 33, 35):
        hits = service.search(ALICE, SearchRequest(query=f"quokka{n}", mode="text", k=3)).results
        assert hits and hits[0].page == n and hits[0].document_id == doc.id
    # redelivery of the original notification: still one document, no re-split
    assert failures(run(handler, s3_notification(TEST_BUCKET, key))) == []
    assert _drain(url) == [] and len(docs(service)) == 1


# --- issue 11: overwrites, stale events, vanished objects, filenames, one bad item ----------------


def _pdf(marker: str) -> bytes:
    return make_text_pdf([f"The {marker} section. {SAMPLE_PAGES[0]}", f"More about {marker}. {SAMPLE_PAGES[1]}"],
                         title=f"Notes {marker}")


def _put(s3: Any, key: str, data: bytes) -> None:
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=data, ContentType="application/pdf")


def _seq(body: str) -> str:
    return str(json.loads(body)["Records"][0]["s3"]["object"]["sequencer"])


def _text_hits(service: QuerioService, word: str) -> list[Any]:
    return service.search(ALICE, SearchRequest(query=word, mode="text", k=10)).results


def test_overwrite_replaces_and_a_stale_event_never_wins(handler: Any, aws: Any, capsys: Any) -> None:  # noqa: F811
    svc = handler.service
    key = f"tenants/{TENANT}/uploads/{uuid.uuid4()}.pdf"
    _put(aws, key, _pdf("aardvark"))
    first = object_event(aws, key)
    assert failures(run(handler, first)) == []
    [old] = docs(svc)
    assert {h.document_id for h in _text_hits(svc, "aardvark")} == {old.id}

    _put(aws, key, _pdf("zebu"))  # an overwrite: new bytes under the same key
    second = object_event(aws, key)
    assert failures(run(handler, second)) == []
    [new] = docs(svc)  # one key, one live document
    assert new.id != old.id and new.storage_path == key
    assert _text_hits(svc, "aardvark") == []  # the old text is gone from search
    hits = _text_hits(svc, "zebu")
    assert hits and {h.document_id for h in hits} == {new.id}
    assert len({h.chunk_id for h in hits}) == len(hits)
    answer = svc.query(ALICE, QueryRequest(query="zebu section"))
    assert {c.document_id for c in answer.citations} == {new.id}  # no citation of the old bytes
    with pytest.raises(NotFound):
        svc.get_document(ALICE, old.id)

    # the first event again (replayed), and out of order with a shorter sequencer (compared padded)
    stale_put = s3_notification(TEST_BUCKET, key, etag=json.loads(first)["Records"][0]["s3"]["object"]["eTag"],
                                sequencer=_seq(first).lstrip("0")[:-1] or "1")
    stale_remove = s3_notification(TEST_BUCKET, key, event="ObjectRemoved:Delete",
                                   sequencer=f"{int(_seq(first), 16) + 1:X}")
    assert failures(run(handler, first, stale_put, stale_remove)) == []
    assert [d.id for d in docs(svc)] == [new.id] and _text_hits(svc, "aardvark") == []
    assert aws.head_object(Bucket=TEST_BUCKET, Key=key)  # a stale remove deletes nothing

    # the same bytes PUT again under the same key: nothing to do
    _put(aws, key, _pdf("zebu"))
    assert failures(run(handler, object_event(aws, key))) == []
    assert [d.id for d in docs(svc)] == [new.id]
    out = capsys.readouterr().out
    assert '"IngestSkipped"' in out and '"IngestFailures"' not in out

    # the key removed: whatever document it holds now goes; a late PUT event cannot revive it
    last_put = object_event(aws, key)
    aws.delete_object(Bucket=TEST_BUCKET, Key=key)
    assert failures(run(handler, s3_notification(TEST_BUCKET, key, event="ObjectRemoved:Delete"))) == []
    assert docs(svc) == [] and _text_hits(svc, "zebu") == []
    assert failures(run(handler, last_put, second)) == []
    assert docs(svc) == []


def test_overwrite_with_bytes_another_key_holds(handler: Any, aws: Any) -> None:  # noqa: F811
    """Identical bytes under another key stay a ``duplicate`` (its redundant object is removed);
    the overwritten key's own document goes, because its bytes are gone from the key."""
    svc = handler.service
    held = upload(aws, _pdf("okapi"))
    key = upload(aws, _pdf("ibex"))
    assert failures(run(handler, object_event(aws, held), object_event(aws, key))) == []
    okapi = next(d for d in docs(svc) if d.storage_path == held)
    _put(aws, key, _pdf("okapi"))
    assert failures(run(handler, object_event(aws, key))) == []
    assert [d.id for d in docs(svc)] == [okapi.id]
    assert _text_hits(svc, "ibex") == []
    assert aws.list_objects_v2(Bucket=TEST_BUCKET, Prefix=key).get("KeyCount") == 0
    assert aws.head_object(Bucket=TEST_BUCKET, Key=held)  # the document's own object stays


def test_api_delete_never_deletes_an_object_holding_other_bytes(handler: Any, aws: Any) -> None:  # noqa: F811
    svc = handler.service
    key = upload(aws, _pdf("gecko"))
    assert failures(run(handler, object_event(aws, key))) == []
    [old] = docs(svc)
    _put(aws, key, _pdf("lemur"))  # overwritten; its event is still in the queue
    overwrite = object_event(aws, key)
    svc.delete_document(ALICE, old.id)  # the user deletes the old document through the API
    assert aws.head_object(Bucket=TEST_BUCKET, Key=key)  # the new bytes are not deleted with it
    assert failures(run(handler, overwrite)) == []
    [new] = docs(svc)
    assert new.id != old.id and {h.document_id for h in _text_hits(svc, "lemur")} == {new.id}
    # deleting the current document removes its own object
    svc.delete_document(ALICE, new.id)
    assert aws.list_objects_v2(Bucket=TEST_BUCKET, Prefix=key).get("KeyCount") == 0


def test_object_deleted_before_its_ingest_is_skipped(handler: Any, aws: Any, capsys: Any) -> None:  # noqa: F811
    key = upload(aws, _pdf("tapir"))
    created = object_event(aws, key)
    aws.delete_object(Bucket=TEST_BUCKET, Key=key)
    record = sqs_record(created, receive_count=1)
    assert failures(run(handler, record)) == []  # acknowledged: nothing to retry
    assert docs(handler.service) == []
    out = capsys.readouterr().out
    assert '"IngestFailures"' not in out and '"IngestSkipped"' in out


def test_unexpected_error_fails_one_document_not_the_batch(handler: Any, aws: Any, capsys: Any,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokenizer choking on one document's text (a TypeError, as unpaired surrogates did) is a
    permanent failure of that document: recorded, acknowledged, never a retry loop."""
    embedder = handler.service.embedder
    real = embedder.embed_documents

    def choke(texts: Any) -> Any:
        if any("kaboom" in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return real(texts)

    monkeypatch.setattr(embedder, "embed_documents", choke)
    bad = sqs_record(object_event(aws, upload(aws, _pdf("kaboom"))))
    good = sqs_record(object_event(aws, upload(aws, _pdf("quetzal"))))
    assert failures(run(handler, bad, good)) == []
    by_status = {d.processing_status: d for d in docs(handler.service)}
    failed = by_status[DocumentStatus.FAILED]
    assert failed.error_code == "internal_error" and "TypeError" in (failed.error_message or "")
    assert by_status[DocumentStatus.COMPLETED].title == "Notes quetzal"
    out = capsys.readouterr().out
    assert '"IngestFailures"' in out and '"internal_error"' in out
    # the same bytes again (a redelivery) fail the same way, once, and are acknowledged again
    assert failures(run(handler, bad)) == []


def test_upload_url_keeps_the_users_filename(handler: Any, aws: Any) -> None:  # noqa: F811
    import requests

    svc = handler.service
    data = _pdf("narwhal")
    hostile = "../../tenant-b/Relatório\u202e\u200b  «final»\x07 Q3\u3000v2.pdf"
    out = svc.create_upload_url(ALICE, hostile, len(data))
    expected = "Relatório «final» Q3 v2.pdf"  # path, bidi/zero-width/control chars and odd spaces gone
    assert out["filename"] == expected
    assert out["headers"]["x-amz-meta-filename"]  # required: signed into the URL
    resp = requests.put(str(out["url"]), data=data, headers=dict(out["headers"]), timeout=10)  # type: ignore[call-overload]
    assert resp.status_code == 200
    key = str(out["key"])
    assert failures(run(handler, object_event(aws, key))) == []
    [doc] = docs(svc)
    assert doc.filename == expected and doc.storage_path == key
    hits = svc.search(ALICE, SearchRequest(query="narwhal")).results
    assert hits and hits[0].filename == expected
    assert svc.query(ALICE, QueryRequest(query="narwhal section")).citations[0].filename == expected
    # metadata is whatever the client sent: a hand-made upload is sanitised on the way in too
    key2 = f"tenants/{TENANT}/uploads/{uuid.uuid4()}.pdf"
    aws.put_object(Bucket=TEST_BUCKET, Key=key2, Body=_pdf("dugong"), ContentType="application/pdf",
                   Metadata={"filename": "..%2F..%2Fetc%2Fpasswd%0A%E2%80%AEx" + "y" * 400 + ".pdf"})
    assert failures(run(handler, object_event(aws, key2))) == []
    named = next(d for d in docs(svc) if d.storage_path == key2).filename
    assert named.startswith("passwd") and "/" not in named and "\n" not in named and len(named) <= 255


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the Pinecone SDK's sleeps between retries (its own test seam)."""
    from pinecone._internal import http_client

    monkeypatch.setattr(http_client, "_retry_sleep", lambda _s: None)


def test_a_document_is_not_completed_while_pinecone_lacks_its_vectors(
        aws: Any, tmp_path: Path, pg_dsn: str, pinecone_standin: StandinServer,  # noqa: F811
        no_backoff: None) -> None:
    """Pinecone serves; its writes fail for a while (the stand-in refuses the key). The S3 path
    keeps the document ``indexing`` (not searchable, counted) and retries its message until the
    vectors are there; an API upload is re-synced by the archive schedule."""
    from functions.ingest import handler as ingest_handler
    from querio.archive import run_archive
    from querio.observability import counters

    settings = make_settings(tmp_path / "data", pg_dsn, blob_backend="s3", s3_bucket=TEST_BUCKET,
                             vector_backend="pinecone", pinecone_index=INDEX, pinecone_host=pinecone_standin.url,
                             pinecone_api_key=API_KEY, pinecone_namespace_prefix="tenant-")
    service = build_service(settings)
    ingest_handler.set_service_factory(lambda: service)
    try:
        record = sqs_record(object_event(aws, upload(aws, _pdf("axolotl"))))
        pinecone_standin.api_key = "revoked"  # the serving vector store refuses writes
        before = counters["DocumentsPendingIndex"]
        assert failures(run(ingest_handler, record)) == [record["messageId"]]  # retried, like any outage
        [doc] = docs(service)
        assert doc.processing_status == DocumentStatus.INDEXING
        assert counters["DocumentsPendingIndex"] - before == 1
        assert service.search(ALICE, SearchRequest(query="axolotl", mode="text")).results == []  # not partly there
        pinecone_standin.api_key = API_KEY
        assert failures(run(ingest_handler, record)) == []  # the redelivery copies the vectors
        done = service.get_document(ALICE, doc.id)
        assert done.processing_status == DocumentStatus.COMPLETED
        assert service.vectors.pinecone.namespace_counts() == {TENANT: done.chunk_count}  # type: ignore[attr-defined]
        hits = service.search(ALICE, SearchRequest(query="axolotl section", mode="vector")).results
        assert hits and hits[0].document_id == doc.id

        pinecone_standin.api_key = "revoked"
        outcome = service.ingest(ALICE, _pdf("capybara"), "capybara.pdf")
        assert outcome.document is not None and outcome.document.processing_status == DocumentStatus.INDEXING
        pinecone_standin.api_key = API_KEY
        assert run_archive(service).reindexed == 1
        assert service.get_document(ALICE, outcome.document.id).processing_status == DocumentStatus.COMPLETED
        assert run_archive(service).reindexed == 0
    finally:
        ingest_handler.set_service_factory(None)
        service.documents.close()


def test_deleting_an_old_version_keeps_the_current_document(handler: Any, aws: Any) -> None:  # noqa: F811
    """Versioned bucket (as deployed): deleting a noncurrent version by id also sends
    ``ObjectRemoved:Delete``, with a newer sequencer; the key still holds the current bytes."""
    aws.put_bucket_versioning(Bucket=TEST_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = f"tenants/{TENANT}/uploads/{uuid.uuid4()}.pdf"
    _put(aws, key, _pdf("marmot"))
    old_version = aws.head_object(Bucket=TEST_BUCKET, Key=key)["VersionId"]
    _put(aws, key, _pdf("wombat"))
    assert failures(run(handler, object_event(aws, key))) == []
    [doc] = docs(handler.service)
    aws.delete_object(Bucket=TEST_BUCKET, Key=key, VersionId=old_version)
    removed = s3_notification(TEST_BUCKET, key, event="ObjectRemoved:Delete", version_id=old_version)
    assert failures(run(handler, removed)) == []
    assert [d.id for d in docs(handler.service)] == [doc.id]
    assert {h.document_id for h in _text_hits(handler.service, "wombat")} == {doc.id}
    # deleting the key itself (a delete marker) removes it
    aws.delete_object(Bucket=TEST_BUCKET, Key=key)
    assert failures(run(handler, s3_notification(TEST_BUCKET, key, event="ObjectRemoved:DeleteMarkerCreated"))) == []
    assert docs(handler.service) == []
