"""Generated answers through Amazon Bedrock's Converse API (optional; ``QUERIO_BEDROCK_MODEL_ID``).

The prompt gives the model the ranked passages, numbered ``[1]``..``[n]`` in rank order, and
asks it to answer only from them and to cite each claim with its ``[n]``; the service then keeps
as ``sources`` exactly the passages cited, renumbered (``querio.retrieval.citing``). Recent chat turns go in as
earlier Converse messages, so follow-up questions keep their context.

Bedrock is never a single point of failure: on any error (throttling, access denied, a model
not enabled in the account, a timeout, an empty reply) the answer falls back to the
extractive one, with a warning log and the ``AnswerFallback`` metric. The mode the caller
sees follows what actually happened: :attr:`BedrockAnswerer.mode` and ``model`` are per-thread
values describing the *last* call made by the current thread (the service reads them right
after ``answer`` returns), so a fallback is reported as ``"extractive"`` with no model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from querio.models import ChatMessage, ChatRole
from querio.observability import emit
from querio.ports import AnswerGenerator, StoredChunk

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You answer questions about the user's documents. Use ONLY the numbered passages given "
    "with the question. After every sentence that uses a passage, cite it as [n] with the "
    "passage's number. If the passages do not contain the answer, say so plainly; never invent "
    "facts, numbers or citations. Answer concisely, in the language of the question."
)
NO_PASSAGES = "No indexed passage matches this question."


class BedrockAnswerer:
    """:class:`~querio.ports.AnswerGenerator` over ``bedrock-runtime`` ``Converse``."""

    def __init__(self, client_factory: Callable[[], Any], model_id: str, *, fallback: AnswerGenerator,
                 max_tokens: int = 700, temperature: float = 0.1, max_passage_chars: int = 2000,
                 max_history: int = 6) -> None:
        self._client_factory = client_factory
        self.model_id = model_id
        self._fallback = fallback
        self._inference = {"maxTokens": max_tokens, "temperature": temperature}
        self._max_passage_chars = max_passage_chars
        self._max_history = max_history
        self._local = threading.local()

    # per-thread outcome of the last call (see the module docstring)
    @property
    def mode(self) -> str:
        return getattr(self._local, "mode", "generative")

    @property
    def model(self) -> str | None:
        return self.model_id if self.mode == "generative" else self._fallback.model

    def build_messages(self, question: str, passages: Sequence[StoredChunk],
                       history: Sequence[ChatMessage] = ()) -> list[dict[str, Any]]:
        """Converse ``messages``: recent turns (alternating, starting with the user), then the
        question with its numbered passages."""
        turns: list[dict[str, Any]] = []
        for m in list(history)[-self._max_history:]:
            if m.role not in (ChatRole.USER, ChatRole.ASSISTANT) or not m.content.strip():
                continue
            role = "user" if m.role == ChatRole.USER else "assistant"
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"][0]["text"] += "\n" + m.content
            else:
                turns.append({"role": role, "content": [{"text": m.content}]})
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
        blocks = []
        for n, p in enumerate(passages, start=1):
            where = f"{p.filename}, page {p.page_number}"
            text = " ".join(p.content.split())[: self._max_passage_chars]
            blocks.append(f"[{n}] ({where})\n{text}")
        prompt = "Passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
        if turns and turns[-1]["role"] == "user":  # Converse needs alternating roles
            turns.append({"role": "assistant", "content": [{"text": "(noted)"}]})
        turns.append({"role": "user", "content": [{"text": prompt}]})
        return turns

    def request(self, question: str, passages: Sequence[StoredChunk],
                history: Sequence[ChatMessage] = ()) -> dict[str, Any]:
        """The keyword arguments of the ``converse`` call."""
        return {"modelId": self.model_id, "system": [{"text": SYSTEM_PROMPT}],
                "messages": self.build_messages(question, passages, history),
                "inferenceConfig": dict(self._inference)}

    def answer(self, question: str, passages: Sequence[StoredChunk],
               history: Sequence[ChatMessage] = ()) -> str:
        if not passages:  # nothing to ground an answer in: do not spend a model call
            self._local.mode = "extractive"
            return NO_PASSAGES
        try:
            response = self._client_factory().converse(**self.request(question, passages, history))
            blocks = response.get("output", {}).get("message", {}).get("content", [])
            text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict)).strip()
            if not text:
                raise ValueError(f"empty reply (stopReason={response.get('stopReason')!r})")
        except (ClientError, BotoCoreError, ValueError, KeyError, TypeError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            log.warning("bedrock converse failed (%s), answering extractively: %s",
                        code or type(exc).__name__, exc)
            emit("AnswerFallback")
            self._local.mode = "extractive"
            return self._fallback.answer(question, passages, history)
        self._local.mode = "generative"
        usage = response.get("usage") or {}
        if isinstance(usage.get("outputTokens"), int):
            emit("GeneratedTokens", usage["outputTokens"])
        return text
