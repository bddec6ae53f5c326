"""``ChatStore`` in memory."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from querio.errors import NotFound
from querio.models import ChatMessage, ChatRole, ChatSession


class InMemoryChats:
    def __init__(self) -> None:
        self.sessions: dict[uuid.UUID, tuple[str, str, ChatSession]] = {}  # id -> (tenant, user, session)
        self.messages: dict[uuid.UUID, list[ChatMessage]] = {}

    def _owned(self, tenant_id: str, session_id: uuid.UUID) -> ChatSession:
        found = self.sessions.get(session_id)
        if found is None or found[0] != tenant_id:
            raise NotFound(f"chat session {session_id} not found")
        return found[2]

    def create_chat_session(self, tenant_id: str, user_id: str, title: str | None) -> ChatSession:
        at = dt.datetime.now(dt.UTC)
        session = ChatSession(id=uuid.uuid4(), title=title[:255] if title else title, created_at=at, updated_at=at,
                              message_count=0)
        self.sessions[session.id] = (tenant_id, user_id, session)
        self.messages[session.id] = []
        return session

    def get_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> ChatSession:
        return self._owned(tenant_id, session_id)

    def list_chat_sessions(self, tenant_id: str, *, limit: int = 50, offset: int = 0) -> list[ChatSession]:
        mine = [s for t, _, s in self.sessions.values() if t == tenant_id]
        mine.sort(key=lambda s: (-s.updated_at.timestamp(), s.id))
        return mine[offset:offset + limit]

    def add_chat_message(self, tenant_id: str, session_id: uuid.UUID, role: ChatRole, content: str, *,
                         source_chunks: Sequence[uuid.UUID] = (), metadata: dict[str, Any] | None = None
                         ) -> ChatMessage:
        session = self._owned(tenant_id, session_id)
        at = dt.datetime.now(dt.UTC)
        message = ChatMessage(id=uuid.uuid4(), session_id=session_id, role=role, content=content,
                              source_chunks=list(source_chunks), metadata=metadata or {}, created_at=at)
        self.messages[session_id].append(message)
        bumped = session.model_copy(update={"message_count": session.message_count + 1, "updated_at": at})
        self.sessions[session_id] = (*self.sessions[session_id][:2], bumped)
        return message

    def chat_history(self, tenant_id: str, session_id: uuid.UUID, *, limit: int = 100) -> list[ChatMessage]:
        self._owned(tenant_id, session_id)
        return self.messages[session_id][-limit:] if limit > 0 else []

    def delete_chat_session(self, tenant_id: str, session_id: uuid.UUID) -> None:
        self._owned(tenant_id, session_id)
        del self.sessions[session_id], self.messages[session_id]
