"""Batch jobs: persisted before they run, every item submitted to the engine at once, resumed after a restart.

vLLM's continuous batching schedules the items (no home-made static batches): each item is one engine
request, started together. Finished items are buffered and flushed to SQLite in one transaction per
interval; a job killed mid-run resumes at the next start with only its unfinished items.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from mcp_llm.core.access import Principal, not_found
from mcp_llm.core.answers import Answer, Answering, answering
from mcp_llm.core.fairness import FairGate
from mcp_llm.core.inference import Recorder, prompt_input
from mcp_llm.core.store import JOB_OPEN, Store, request_item
from mcp_llm.engine.base import Adapter, routing_key
from mcp_llm.errors import InputError, Retryable
from mcp_llm.schemas import (
    EXTRAS,
    SCORES,
    BatchItem,
    ChatMessage,
    Completion,
    JobStatus,
    SamplingOptions,
    Timing,
    Usage,
    tokens_per_s,
)

if TYPE_CHECKING:
    from mcp_llm.core.services import Services
    from mcp_llm.settings import Settings

log = logging.getLogger(__name__)
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # waits between retries of an item, the last one repeated
PREPARE_CHUNK = 64  # items tokenized together ahead of their window slots


@dataclass
class JobProgress:
    """Live counts of a running job."""

    total: int
    completed: int = 0
    failed: int = 0
    output_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> int:
        return self.completed + self.failed

    def message(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.output_tokens / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {_duration(elapsed / self.done * (self.total - self.done))}" if 0 < self.done < self.total else ""
        return (
            f"{self.done}/{self.total} items, {self.failed} failed, {rate:.0f} tok/s, {_duration(elapsed)} so far{eta}"
        )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


@dataclass
class Prompt:
    """One item made ready for the engine: its token ids, or the error that keeps it from running."""

    index: int
    item: dict
    token_ids: list[int] | None = None
    error: Exception | None = None


class JobRunner:
    """Owns the running job tasks; the store holds everything that must outlive them."""

    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        retry_s: float = 300.0,
        lease_s: float = 30.0,
        gate: FairGate | None = None,
    ) -> None:
        self.store, self.recorder, self.retry_s, self.lease_s = store, recorder, retry_s, lease_s
        self.gate = gate or FairGate(1 << 30)  # the window every job's items enter the engine through
        self.max_database_bytes: int | None = None  # a new job is refused past it (set from the settings)
        self.parsers: dict[str, str | None] = {}  # the server's tool_call_parser and reasoning_parser, by name
        self.owner = uuid.uuid4().hex[:12]  # this server, as the holder of job leases in a shared database
        self._tasks: dict[str, asyncio.Task] = {}
        self._progress: dict[str, JobProgress] = {}
        self._cancelled: set[str] = set()

    def submit(
        self,
        inputs: list[dict],
        sampling: SamplingOptions,
        client: str,
        principal: Principal | None = None,
        answer: dict | None = None,
    ) -> str:
        """Persist a job (all items pending) and start it; returns its id. `answer` holds the options that shape
        each item's answer (tools, tool_choice, pick, include_reasoning: see `answering`), stored with the job so a
        resumed job answers alike. With `principal`, a job past one of its quotas (tokens, open jobs, queued items)
        is refused first."""
        if principal is not None and self.recorder.quotas is not None:
            self.recorder.quotas.check_job(principal, len(inputs))
        if self.max_database_bytes and (size := self.store.size_bytes()) > self.max_database_bytes:
            raise InputError(
                f"The server's database holds {size / 1e6:.0f} MB, over its limit of "
                f"{self.max_database_bytes / 1e6:.0f} MB (max_database_bytes): no new job until old ones are pruned "
                "(job_retention_s) or the limit is raised."
            )
        job_id = uuid.uuid4().hex[:16]
        options = {"sampling": sampling.model_dump(), "client": client, "answer": answer or {}}
        self.store.create_job(job_id, "batch", options, inputs, owner=self.owner, lease_s=self.lease_s, client=client)
        self._start(job_id, list(enumerate(inputs)), sampling, client, JobProgress(total=len(inputs)), answer or {})
        return job_id

    def resume(self, take_all: bool = True) -> list[str]:
        """Restart the open jobs this server may take, with their unfinished items only: with `take_all` every
        job a previous run left open (one server owns the data dir), else those whose lease ran out (a server
        sharing the database died)."""
        claimed = set(self.store.claim_jobs(self.owner, self.lease_s, take_all))
        resumed = []
        for job in self.store.jobs(JOB_OPEN, limit=10_000, newest_first=False):
            if job["id"] not in claimed or job["id"] in self._tasks:
                continue
            options = json.loads(job["options"])
            counts = self.store.item_counts(job["id"])
            self._start(
                job["id"],
                self.store.pending_items(job["id"]),
                SamplingOptions.model_validate(options["sampling"]),
                options.get("client", "resumed"),
                JobProgress(job["total"], counts.get("done", 0), counts.get("error", 0)),
                options.get("answer") or {},
            )
            resumed.append(job["id"])
        if resumed:
            log.info("resumed %d unfinished jobs: %s", len(resumed), ", ".join(resumed))
        return resumed

    def _start(
        self,
        job_id: str,
        items: list[tuple[int, dict]],
        sampling: SamplingOptions,
        client: str,
        progress: JobProgress,
        answer: dict,
    ) -> None:
        self._progress[job_id] = progress
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, items, sampling, client, progress, answer))

    async def _run(
        self,
        job_id: str,
        items: list[tuple[int, dict]],
        sampling: SamplingOptions,
        client: str,
        progress: JobProgress,
        answer: dict,
    ) -> None:
        await self._settle(job_id, "running")
        routing_key.set(job_id)  # the item tasks inherit it: a session-routing router keeps the job on one replica
        try:
            # checked and compiled once per job, off the loop; options refused now (a job stored before the guard
            # existed, a tool parser no longer configured) fail every item before any engine work, and no schema is
            # ever forwarded or fetched
            plan: Answering | InputError
            try:
                plan = await answering(sampling, **answer, **self.parsers)
            except InputError as exc:
                plan = exc
            admitted = contextlib.aclosing(self._admitted(items, client, functools.partial(self._prompts, plan=plan)))
            async with asyncio.TaskGroup() as group, admitted as granted:  # item tasks exist only with a slot
                async for prompt in granted:
                    group.create_task(self._released(self._item(job_id, prompt, plan, client, progress), client))
            await self._settle(job_id, "completed")
        except asyncio.CancelledError:
            if job_id in self._cancelled:  # cancel_job; otherwise a shutdown, and the job resumes at next start
                self.store.set_job_status(job_id, "cancelled")
            else:
                with contextlib.suppress(sqlite3.Error):  # unwritten items stay pending: they run again at resume
                    self.store.flush()
            raise
        finally:
            progress.finished.set()
            self._tasks.pop(job_id, None)

    async def _settle(self, job_id: str, status: str) -> None:
        """Record the job's status, retrying while the database cannot be written (disk full, read-only, locked):
        once the cause is gone the job completes; nothing is lost meanwhile (its results wait in memory)."""
        for attempt in itertools.count():
            try:
                self.store.set_job_status(job_id, status)
                return
            except sqlite3.Error as exc:
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                log.warning("job %s: cannot record %s yet (%s); retrying in %.1f s", job_id, status, exc, wait)
                await asyncio.sleep(wait)

    async def _admitted(
        self,
        items: list[tuple[int, dict]],
        client: str,
        prepare: Callable[[list[tuple[int, dict]]], Awaitable[list[Prompt]]],
    ) -> AsyncIterator[Prompt]:
        """The items' prompts, each once the fair window grants it a slot. A job keeps up to a window's worth of
        requests queued (futures, not item tasks), so its client can take its even part whenever slots free up, and
        tokenizes the items those requests are for while it waits, a chunk at a time off the event loop: when a
        wave of items ends, the next wave is ready for the engine at once."""
        ahead: deque[asyncio.Future[None]] = deque()
        ready: deque[Prompt] = deque()  # ready[k] is items[n + k]
        try:
            for n in range(len(items)):
                while len(ahead) < self.gate.capacity and n + len(ahead) < len(items):
                    ahead.append(self.gate.request(client))
                while not ready or (len(ready) < len(ahead) and not ahead[0].done()):
                    start = n + len(ready)
                    ready.extend(await prepare(items[start : start + min(PREPARE_CHUNK, len(ahead) - len(ready))]))
                await asyncio.shield(ahead[0])
                ahead.popleft()
                yield ready.popleft()
        finally:
            self.gate.withdraw(client, ahead)

    async def _prompts(self, items: list[tuple[int, dict]], plan: Answering | InputError) -> list[Prompt]:
        """Items' token ids (the chat template shows them the job's tools), or why each cannot run; tokenized in
        one batch, in a worker thread."""
        if isinstance(plan, InputError):
            return [Prompt(i, item, error=InputError(str(plan))) for i, item in items]
        return await anyio.to_thread.run_sync(self._tokenized, items, plan.templated_tools)

    def _tokenized(self, items: list[tuple[int, dict]], tools: list[dict] | None) -> list[Prompt]:
        inputs: list[str | list[ChatMessage] | Exception] = []
        for _, item in items:
            try:
                messages = [ChatMessage.model_validate(m) for m in item["messages"]] if "messages" in item else None
                inputs.append(prompt_input(item.get("prompt"), messages, tools))
            except Exception as exc:
                inputs.append(exc)
        valid = [value for value in inputs if not isinstance(value, Exception)]
        encoded = iter(self.recorder.engine.tokenize_many(valid, tools) if valid else ())
        prompts = []
        for (i, item), value in zip(items, inputs, strict=True):
            ids = value if isinstance(value, Exception) else next(encoded)
            prompts.append(Prompt(i, item, error=ids) if isinstance(ids, Exception) else Prompt(i, item, ids))
        return prompts

    async def _released(self, item: Awaitable[None], client: str) -> None:
        """Run one item, then pass its window slot on."""
        try:
            await item
        finally:
            self.gate.release(client)

    async def _item(
        self, job_id: str, prompt: Prompt, plan: Answering | InputError, client: str, progress: JobProgress
    ) -> None:
        idx, item = prompt.index, prompt.item
        request_item.set(idx)  # this item task's request-log rows name the item: executions count per item
        try:
            if prompt.error is not None:
                raise prompt.error
            assert prompt.token_ids is not None and not isinstance(plan, InputError)
            adapter = Adapter(**item["adapter"]) if item.get("adapter") else None
            completion = await self._complete_with_retries(job_id, prompt.token_ids, plan.sampling, client, adapter)
            done = await plan.finish(self.recorder.engine, completion)
        except Exception as exc:  # one bad item never fails the others
            if not isinstance(exc, InputError):
                log.exception("job %s item %d failed", job_id, idx)
            progress.failed += 1
            self.store.save_item(job_id, idx, {"status": "error", "error": str(exc) or type(exc).__name__})
            return
        completion = done.completion
        progress.completed += 1
        progress.output_tokens += completion.usage.completion_tokens
        self.store.save_item(
            job_id,
            idx,
            {
                "status": "done",
                "text": completion.text,
                "finish_reason": completion.finish_reason,
                "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                **completion.timing.model_dump(include={"queue_ms", "ttft_ms", "tpot_ms", "total_ms"}),
                "scores": _scores(done),
            },
        )

    async def _complete_with_retries(
        self, job_id: str, token_ids: list[int], sampling: SamplingOptions, client: str, adapter: Adapter | None
    ) -> Completion:
        """One item's completion; cut off by a swap or a remote outage, it runs again (with backoff) for up to
        retry_s, so each item ends with exactly one saved result."""
        deadline = time.monotonic() + self.retry_s
        for attempt in itertools.count():
            try:
                return await self.recorder.complete(
                    token_ids, sampling, client=client, kind="batch", job_id=job_id, adapter=adapter
                )
            except Retryable as exc:
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if time.monotonic() + wait > deadline:
                    raise Retryable(f"{exc} (gave up after {attempt + 1} attempts over {self.retry_s:.0f} s)") from exc
                log.info("job %s: item cut off (%s); retrying in %.1f s", job_id, exc, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def maintain(self) -> None:
        """Periodic: renew this server's leases, stop jobs cancelled through another server, take over jobs
        whose server stopped renewing. A failure is logged and tried again next time."""
        try:
            await self._maintain()
        except Exception:
            log.exception("job lease maintenance failed")

    async def _maintain(self) -> None:
        self.store.renew_leases(self.owner, self.lease_s)
        for job_id in list(self._tasks):
            job = self.store.job(job_id)
            if job is not None and job["status"] == "cancelled":
                await self.cancel(job_id)
        self.resume(take_all=False)

    def prune(self, now: float, settings: Settings) -> dict[str, int]:
        """Delete rows past their retention, and forget the live counts of jobs no longer running here."""
        counts = self.store.prune(
            now,
            settings.job_retention_s,
            settings.task_retention_s,
            settings.benchmark_retention_s,
            settings.usage_retention_s,
            settings.conversation_retention_s,
        )
        for job_id in [j for j in self._progress if j not in self._tasks]:
            del self._progress[job_id]
        self._cancelled &= set(self._tasks)
        if any(counts.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} {kind}" for kind, n in counts.items() if n))
        return counts

    def progress(self, job_id: str) -> JobProgress | None:
        """Live counts while the job runs in this process (None otherwise)."""
        return self._progress.get(job_id)

    async def wait(self, job_id: str, report: Callable[[JobProgress], Awaitable[None]], interval_s: float) -> None:
        """Wait for a job, calling `report` at most every `interval_s` (and once at the end)."""
        progress = self._progress.get(job_id)
        if progress is None:  # it ended and was forgotten already
            return
        while not progress.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.finished.wait(), interval_s)
            await report(progress)

    async def cancel(self, job_id: str) -> bool:
        """Stop a running job: its engine requests are aborted, finished items kept. False if not running."""
        task = self._tasks.get(job_id)
        if task is None:
            job = self.store.job(job_id)
            if job is None or job["status"] not in JOB_OPEN:
                return False
            self.store.set_job_status(job_id, "cancelled")  # another server runs it: it stops at its next renewal
            return True
        self._cancelled.add(job_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def close(self) -> None:
        """Stop every job task for a shutdown; their jobs stay open in the store and resume at next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.store.flush()


def job_status_of(svc: Services, job_id: str, principal: Principal | None = None) -> JobStatus:
    """The job's row, with live counts while it runs here; an unknown id, or with `principal` one that is not
    theirs to see, is "not found" alike."""
    row = svc.store.job(job_id)
    if row is None or (principal is not None and not principal.owns(row["client"])):
        raise not_found("job", job_id, "list_jobs")
    live: JobProgress | None = svc.jobs.progress(job_id)
    completed, failed = (
        (live.completed, live.failed) if live and row["status"] == "running" else (row["completed"], row["failed"])
    )
    return JobStatus(
        job_id=job_id,
        status=row["status"],
        total=row["total"],
        completed=completed,
        failed=failed,
        pending=row["total"] - completed - failed,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        progress=live.message() if live and row["status"] == "running" else None,
        error=row["error"],
        client=row["client"],
    )


def _scores(done: Answer) -> str | None:
    """What logprobs, prompt_logprobs, n, tools and reasoning added to an item's answer, as stored (JSON); None
    without them."""
    scores = done.completion.model_dump(include=set(SCORES), exclude_none=True)
    if done.tool_calls:
        scores["tool_calls"] = [call.model_dump() for call in done.tool_calls]
    if done.reasoning is not None:
        scores["reasoning"] = done.reasoning
    return json.dumps(scores) if scores else None


def item_of(row: dict) -> BatchItem:
    done = row["status"] == "done"
    return BatchItem(
        **json.loads(row.get("scores") or "{}"),
        index=row["idx"],
        status=row["status"],
        text=row["text"],
        finish_reason=row["finish_reason"],
        error=row["error"],
        usage=Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            total_tokens=row["prompt_tokens"] + row["completion_tokens"],
        )
        if done
        else None,
        timing=Timing(
            queue_ms=row["queue_ms"],
            ttft_ms=row["ttft_ms"],
            tpot_ms=row["tpot_ms"],
            total_ms=row["total_ms"] or 0.0,
            tokens_per_s=tokens_per_s(row["completion_tokens"], row["total_ms"]),
        )
        if done
        else None,
    )


def item_json(row: dict) -> dict:
    """An item as results pages and `jobs://` write it: the optional parts (confidence, logprobs, samples, tool
    calls, reasoning) only where the request asked for them."""
    item = item_of(row)
    return item.model_dump(exclude={name for name in EXTRAS if getattr(item, name) is None})


def result_pages(svc: Services, job_id: str) -> list[str]:
    """URIs of the pages a job's results split into (each page at most max_result_chars of JSON)."""
    return [f"jobs://{job_id}/results/{n + 1}" for n in range(len(page_bounds(svc, job_id)))]


def page_bounds(svc: Services, job_id: str) -> list[tuple[int, int]]:
    """(offset, count) of each results page: items in order, a page closed before it would pass the bound."""
    bound, bounds, start, size = svc.settings.max_result_chars, [], 0, 0
    rows = svc.store.items(job_id, limit=1_000_000)
    for i, row in enumerate(rows):
        length = len(json.dumps(item_json(row))) + 2  # as the page is written: json.dumps, ", " apart
        if i > start and size + length > bound:
            bounds.append((start, i - start))
            start, size = i, 0
        size += length
    bounds.append((start, len(rows) - start))
    return bounds
