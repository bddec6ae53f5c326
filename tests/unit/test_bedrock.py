"""BedrockAnswerer against botocore's Stubber (no network, no credentials)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from querio import observability
from querio.models import ChatMessage, ChatRole
from querio.ports import StoredChunk
from querio.retrieval.bedrock import SYSTEM_PROMPT, BedrockAnswerer
from querio.service import QuerioService

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def chunk(text: str, page: int, filename: str = "manual.pdf") -> StoredChunk:
    return StoredChunk(id=uuid.uuid4(), document_id=uuid.uuid4(), chunk_index=page - 1, content=text,
                       page_number=page, page_end=page, filename=filename, title=None)


PASSAGES = [chunk("Set the terminal with the set terminal command.", 4),
            chunk("Plots are drawn with the plot command.", 9)]


class Extractive:
    mode = "extractive"
    model = None

    def answer(self, question: str, passages: Sequence[StoredChunk], history: Sequence[ChatMessage] = ()) -> str:
        return "extractive answer [1]"


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def reply(text: str) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 50, "outputTokens": 12, "totalTokens": 62},
            "metrics": {"latencyMs": 120}}


def test_converse_call_and_generative_answer(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    answerer = BedrockAnswerer(lambda: client, MODEL, fallback=Extractive())
    expected = answerer.request("How do I change the terminal?", PASSAGES)
    assert expected["modelId"] == MODEL and expected["system"] == [{"text": SYSTEM_PROMPT}]
    prompt = expected["messages"][-1]["content"][0]["text"]
    assert "[1] (manual.pdf, page 4)" in prompt and "[2] (manual.pdf, page 9)" in prompt
    stub.add_response("converse", reply("Use set terminal [1]."), expected)
    text = answerer.answer("How do I change the terminal?", PASSAGES)
    assert text == "Use set terminal [1]."
    assert answerer.mode == "generative" and answerer.model == MODEL


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException", "ModelTimeoutException",
                                  "ServiceUnavailableException"])
def test_bedrock_errors_fall_back_to_extractive(stubbed: tuple[Any, Stubber], code: str) -> None:
    client, stub = stubbed
    answerer = BedrockAnswerer(lambda: client, MODEL, fallback=Extractive())
    stub.add_client_error("converse", service_error_code=code, service_message="nope", http_status_code=400)
    before = observability.counters["AnswerFallback"]
    assert answerer.answer("q?", PASSAGES) == "extractive answer [1]"
    assert answerer.mode == "extractive" and answerer.model is None
    assert observability.counters["AnswerFallback"] == before + 1


def test_an_empty_reply_falls_back(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    answerer = BedrockAnswerer(lambda: client, MODEL, fallback=Extractive())
    stub.add_response("converse", reply("   "))
    assert answerer.answer("q?", PASSAGES) == "extractive answer [1]"
    assert answerer.mode == "extractive"


def test_no_passages_make_no_call(stubbed: tuple[Any, Stubber]) -> None:
    client, _ = stubbed
    answerer = BedrockAnswerer(lambda: client, MODEL, fallback=Extractive())
    assert "No indexed passage" in answerer.answer("q?", [])


def test_history_becomes_alternating_turns() -> None:
    now = dt.datetime.now(dt.UTC)

    def msg(role: ChatRole, text: str) -> ChatMessage:
        return ChatMessage(id=uuid.uuid4(), session_id=uuid.uuid4(), role=role, content=text, created_at=now)

    answerer = BedrockAnswerer(lambda: None, MODEL, fallback=Extractive())
    history = [msg(ChatRole.ASSISTANT, "hello"), msg(ChatRole.USER, "plots?"), msg(ChatRole.ASSISTANT, "plot [1]"),
               msg(ChatRole.USER, "and colours?")]
    messages = answerer.build_messages("and on Windows?", PASSAGES, history)
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))


def test_the_service_reports_the_mode_that_happened(stubbed: tuple[Any, Stubber]) -> None:
    """``QuerioService._answer`` reads mode/model after the call: a fallback says extractive."""
    client, stub = stubbed
    answerer = BedrockAnswerer(lambda: client, MODEL, fallback=Extractive())
    service = QuerioService.__new__(QuerioService)
    service.__dict__["answerer"] = answerer  # the cached_property's slot
    from querio.models import SearchHit

    hits = [SearchHit(chunk_id=p.id, document_id=p.document_id, filename=p.filename, page=p.page_number,
                      page_end=p.page_end, chunk_index=p.chunk_index, score=1.0, snippet=p.content,
                      content=p.content) for p in PASSAGES]
    stub.add_response("converse", reply("Use set terminal [1]."))
    generated = service._answer("t", "How?", hits, ())
    assert generated.mode == "generative" and generated.model == MODEL
    # only what the answer cites is a source ("[1]": the first passage)
    assert [c.chunk_id for c in generated.citations] == [hits[0].chunk_id]
    assert [s.chunk_id for s in generated.sources] == [hits[0].chunk_id]
    stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    fallback = service._answer("t", "How?", hits, ())
    assert fallback.mode == "extractive" and fallback.model is None and fallback.answer == "extractive answer [1]"
    assert len(fallback.citations) == 1
