"""S3 notification bodies → work items; page-range planning; parse_pdf page ranges."""

from __future__ import annotations

import json
import uuid

import pytest

from querio.ingest.events import (
    IgnoreRecord,
    IngestObject,
    IngestPart,
    MalformedMessage,
    RemoveObject,
    S3Version,
    parse_body,
    parse_upload_key,
    sequencer_key,
)
from querio.ingest.parts import plan_parts
from querio.ingest.pdf import count_pages, parse_pdf
from tests.fixtures.aws_events import s3_notification, s3_test_event
from tests.fixtures.pdfs import make_text_pdf


def test_created_and_removed() -> None:
    [item] = parse_body(s3_notification("b", "tenants/acme/uploads/My File (1).pdf", size=10, etag="abc123",
                                        sequencer="0055aed6dcd90281e5", version_id="v1"))
    assert item == IngestObject(tenant_id="acme", bucket="b", key="tenants/acme/uploads/My File (1).pdf", size=10,
                                event_time=item.event_time,
                                version=S3Version(event_name="ObjectCreated:Put", sequencer="0055AED6DCD90281E5",
                                                  etag="abc123", version_id="v1"))
    [item] = parse_body(s3_notification("b", "tenants/acme/uploads/x.PDF", event="ObjectRemoved:Delete",
                                        sequencer="not hex!"))
    assert item == RemoveObject(tenant_id="acme", bucket="b", key="tenants/acme/uploads/x.PDF",
                                version=S3Version(event_name="ObjectRemoved:Delete"))


def test_sequencers_compare_after_left_padding() -> None:
    # AWS: compare sequencers of one key as hex strings after left-padding the shorter with zeros
    assert sequencer_key("FF") > sequencer_key("0F0")
    assert sequencer_key("00FF") == sequencer_key("ff")
    assert sequencer_key("100") > sequencer_key("FF") > sequencer_key(None)


@pytest.mark.parametrize("key", [
    "tenants/acme/uploads/../../other/uploads/x.pdf", "tenants/../uploads/x.pdf", "tenants/acme/uploads/.pdf",
    "tenants/acme/uploads/a/b.pdf", "tenants/acme/uploads/x.txt", "tenants/acme/documents/x.pdf",
    "tenants/ac me/uploads/x.pdf", "tenants/acme'--/uploads/x.pdf", "tenants/acme/uploads/x\x07.pdf",
    "/tenants/acme/uploads/x.pdf", "tenants/acme/uploads/..", "tenants/-acme/uploads/x.pdf",
])
def test_refused_keys(key: str) -> None:
    [item] = parse_body(s3_notification("b", key))
    assert isinstance(item, IgnoreRecord) and item.reason
    assert isinstance(parse_upload_key(key), str)


def test_encoded_traversal_stays_refused() -> None:
    [item] = parse_body(s3_notification("b", "tenants/acme/uploads/..%2F..%2Fevil.pdf", encode=False))
    assert isinstance(item, IgnoreRecord)


def test_test_event_and_other_events() -> None:
    assert parse_body(s3_test_event("b")) == [IgnoreRecord(reason="s3:TestEvent")]
    [item] = parse_body(s3_notification("b", "tenants/acme/uploads/x.pdf", event="ObjectRestore:Completed"))
    assert isinstance(item, IgnoreRecord)


@pytest.mark.parametrize("body", ["not json", "[]", "{}", json.dumps({"Records": []}),
                                  json.dumps({"Records": [{"eventSource": "aws:s3",
                                                           "eventName": "ObjectCreated:Put"}]}),
                                  json.dumps({"kind": "part", "tenant_id": "a"})])
def test_malformed_bodies_raise(body: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_body(body)


def test_part_message_roundtrip() -> None:
    part = IngestPart(tenant_id="acme", document_id=uuid.uuid4(), bucket="b", key="tenants/acme/uploads/x.pdf",
                      part_no=2, parts_total=4, page_from=21, page_to=30)
    assert parse_body(json.dumps(part.model_dump(mode="json"))) == [part]
    with pytest.raises(MalformedMessage):
        parse_body(json.dumps(part.model_dump(mode="json") | {"tenant_id": "../x"}))


def test_plan_parts() -> None:
    assert plan_parts(35, 10) == [(1, 10), (11, 20), (21, 30), (31, 35)]
    assert plan_parts(10, 10) == [(1, 10)]
    assert plan_parts(1300, 200)[-1] == (1201, 1300) and len(plan_parts(1300, 200)) == 7


def test_parse_pdf_page_range() -> None:
    data = make_text_pdf([f"page {n} text quokka{n}" for n in range(1, 8)])
    assert count_pages(data) == 7
    parsed = parse_pdf(data, pages=(3, 5))
    assert parsed.page_count == 7 and [p.number for p in parsed.pages] == [3, 4, 5]
    assert "quokka4" in parsed.pages[1].text
    assert [p.number for p in parse_pdf(data, pages=(6, 99)).pages] == [6, 7]
