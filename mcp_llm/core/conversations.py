"""Conversations `chat` keeps in SQLite: each owned by the client that started it, pruned by
`conversation_retention_s`. A turn sends the whole thread through the chat template, so vLLM's prefix
cache serves the earlier turns (each turn records how many prompt tokens came from it); a thread longer
than the context is cut from its oldest turns for that request, with a note, never silently.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from mcp_llm.core import access
from mcp_llm.core.access import Principal
from mcp_llm.core.answers import split_reasoning
from mcp_llm.core.inference import check_size
from mcp_llm.core.services import Services
from mcp_llm.core.store import Store
from mcp_llm.engine.base import Adapter
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage, Completion, SamplingOptions

ROOM_SHARE = 4  # a cut thread leaves the answer max_tokens, or a quarter of the context when that is less


class Conversations:
    """The `conversations` and `turns` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def create(self, client: str, system: str | None = None, forked_from: str | None = None) -> str:
        conversation_id = uuid.uuid4().hex[:16]
        now = time.time()
        row = {"id": conversation_id, "client": client, "created_at": now, "updated_at": now}
        with self.db.conn:
            self.db["conversations"].insert(row | {"forked_from": forked_from})
            if system:
                self.db["turns"].insert(_turn(conversation_id, 0, "system", system))
        return conversation_id

    def get(self, conversation_id: str, caller: Principal) -> dict[str, Any]:
        """The conversation's row; an unknown id, or another client's, is "not found" alike."""
        rows = list(self.db["conversations"].rows_where("id = ?", [conversation_id]))
        if not rows or not caller.owns(rows[0]["client"]):
            raise access.not_found("conversation", conversation_id, "a new `chat` without conversation_id")
        return rows[0]

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self.db["turns"].rows_where("conversation_id = ?", [conversation_id], order_by="idx"))

    def append(self, conversation_id: str, turns: list[dict[str, Any]]) -> None:
        start = len(self.turns(conversation_id))
        rows = [_turn(conversation_id, start + i, **turn) for i, turn in enumerate(turns)]
        with self.db.conn:
            self.db["turns"].insert_all(rows)
            self.db["conversations"].update(conversation_id, {"updated_at": time.time()})

    def fork(self, conversation_id: str, caller: Principal, turns: int | None = None) -> str:
        """A new conversation of the caller's with the first `turns` turns (all when None) of this one."""
        self.get(conversation_id, caller)
        kept = self.turns(conversation_id)
        if turns is not None:
            if not 0 <= turns <= len(kept):
                raise InputError(f"turns must be between 0 and {len(kept)} (the conversation's turns), not {turns}.")
            kept = kept[:turns]
        copy = self.create(caller.client, forked_from=conversation_id)
        fields = ("role", "content", "prompt_tokens", "cached_tokens", "completion_tokens")
        self.append(copy, [{name: turn[name] for name in fields} for turn in kept])
        return copy

    def delete(self, conversation_id: str, caller: Principal) -> int:
        """Remove the conversation and its turns; returns how many turns went."""
        self.get(conversation_id, caller)
        with self.db.conn:
            gone = self.db.execute("delete from turns where conversation_id = ?", [conversation_id]).rowcount
            self.db["conversations"].delete(conversation_id)
        return gone


def _turn(conversation_id: str, idx: int, role: str, content: str, **figures: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "idx": idx, "role": role, "content": content, "at": time.time()} | {
        name: figures.get(name) for name in ("prompt_tokens", "cached_tokens", "completion_tokens")
    }


@dataclass
class Fitted:
    """The thread as one request sends it: its token ids, and how many of the oldest turns were left out."""

    token_ids: list[int]
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def fit(tokenize: Any, turns: list[ChatMessage], max_model_len: int, max_tokens: int) -> Fitted:
    """The thread's tokens, cut from the oldest exchanges (a system turn stays; what is left starts with a user
    turn) until the answer has room for
    `max_tokens` (or a quarter of the context, when that is less); InputError when even the newest turn alone
    does not leave that room."""
    room = min(max_tokens, max_model_len // ROOM_SHARE)
    system = [t for t in turns[:1] if t.role == "system"]
    rest = turns[len(system) :]
    starts = [i for i, turn in enumerate(rest) if i == 0 or turn.role == "user"]  # whole exchanges go
    for dropped in starts:
        token_ids = tokenize(system + rest[dropped:])
        if len(token_ids) + room <= max_model_len:
            if not dropped:
                return Fitted(token_ids)
            note = (
                f"The thread ({len(turns)} turns) is longer than the context ({max_model_len} tokens): its {dropped} "
                "oldest turns were left out of this request (they stay in the conversation)."
            )
            return Fitted(token_ids, dropped, [note])
    raise InputError(
        f"The message alone does not fit the context ({max_model_len} tokens) with room to answer: send a shorter "
        "one (count_tokens tells its size)."
    )


@dataclass
class Turn:
    """What one `chat` turn answered."""

    conversation_id: str
    turn: int
    completion: Completion
    reasoning: str | None
    dropped: int
    notes: list[str]


async def take_turn(
    svc: Services,
    caller: Principal,
    message: str,
    sampling: SamplingOptions,
    conversation_id: str | None = None,
    system: str | None = None,
    adapter: Adapter | None = None,
) -> Turn:
    """Add the caller's message to the conversation (a new one without `conversation_id`), answer it with the
    whole thread as context, and keep both turns."""
    if sampling.n > 1:
        raise InputError("`chat` keeps one answer per turn: leave n at 1 (generate draws several samples).")
    if not message:
        raise InputError("`message` is empty: give the user's next message.")
    check_size(len(message), svc.settings.max_input_chars, "`message`")
    kept = Conversations(svc.store)
    if conversation_id is None:
        conversation_id = kept.create(caller.client, system)
    else:
        kept.get(conversation_id, caller)
        if system is not None:
            raise InputError("`system` is set when a conversation starts: leave it out, or start a new one.")
    thread = [ChatMessage(role=t["role"], content=t["content"]) for t in kept.turns(conversation_id)]
    thread.append(ChatMessage(role="user", content=message))
    engine = svc.engine
    fitted = await anyio.to_thread.run_sync(
        fit, engine.tokenize_chat, thread, engine.max_model_len, sampling.max_tokens
    )
    completion = await svc.recorder.complete(
        fitted.token_ids, sampling, client=caller.client, kind="chat", adapter=adapter
    )
    completion, reasoning = split_reasoning(engine, svc.settings.reasoning_parser, completion)
    usage = completion.usage
    figures = {"prompt_tokens": usage.prompt_tokens, "cached_tokens": usage.cached_tokens}
    answer = {"role": "assistant", "content": completion.text, "completion_tokens": usage.completion_tokens}
    kept.append(conversation_id, [{"role": "user", "content": message}, answer | figures])
    return Turn(conversation_id, len(thread), completion, reasoning, fitted.dropped, fitted.notes)
