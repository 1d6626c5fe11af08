"""Batch jobs: persisted before they run, every item submitted to the engine at once, resumed after a restart.

vLLM's continuous batching schedules the items (no home-made static batches): each item is one engine
request, started together. Finished items are buffered and flushed to SQLite in one transaction per
interval; a job killed mid-run resumes at the next start with only its unfinished items.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcp_llm.engine.base import Adapter
from mcp_llm.engine.swap import SwapAborted
from mcp_llm.errors import InputError
from mcp_llm.inference import Recorder, parse_structured, prompt_token_ids
from mcp_llm.schemas import ChatMessage, SamplingOptions
from mcp_llm.store import JOB_OPEN, Store

log = logging.getLogger(__name__)
SWAP_RETRIES = 3


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
        eta = f", ETA {elapsed / self.done * (self.total - self.done):.0f}s" if 0 < self.done < self.total else ""
        return f"{self.done}/{self.total} items, {self.failed} failed, {rate:.0f} tok/s{eta}"


class JobRunner:
    """Owns the running job tasks; the store holds everything that must outlive them."""

    def __init__(self, store: Store, recorder: Recorder) -> None:
        self.store, self.recorder = store, recorder
        self._tasks: dict[str, asyncio.Task] = {}
        self._progress: dict[str, JobProgress] = {}
        self._cancelled: set[str] = set()

    def submit(self, inputs: list[dict], sampling: SamplingOptions, client: str) -> str:
        """Persist a job (all items pending) and start it; returns its id."""
        job_id = uuid.uuid4().hex[:16]
        self.store.create_job(job_id, "batch", {"sampling": sampling.model_dump(), "client": client}, inputs)
        self._start(job_id, list(enumerate(inputs)), sampling, client, JobProgress(total=len(inputs)))
        return job_id

    def resume(self) -> list[str]:
        """Restart every job a previous run left queued or running, with its unfinished items only."""
        resumed = []
        for job in self.store.jobs(JOB_OPEN, limit=10_000, newest_first=False):
            options = json.loads(job["options"])
            counts = self.store.item_counts(job["id"])
            self._start(
                job["id"],
                self.store.pending_items(job["id"]),
                SamplingOptions.model_validate(options["sampling"]),
                options.get("client", "resumed"),
                JobProgress(job["total"], counts.get("done", 0), counts.get("error", 0)),
            )
            resumed.append(job["id"])
        if resumed:
            log.info("resumed %d unfinished jobs: %s", len(resumed), ", ".join(resumed))
        return resumed

    def _start(
        self, job_id: str, items: list[tuple[int, dict]], sampling: SamplingOptions, client: str, progress: JobProgress
    ) -> None:
        self._progress[job_id] = progress
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, items, sampling, client, progress))

    async def _run(
        self, job_id: str, items: list[tuple[int, dict]], sampling: SamplingOptions, client: str, progress: JobProgress
    ) -> None:
        self.store.set_job_status(job_id, "running")
        try:
            await asyncio.gather(*(self._item(job_id, i, x, sampling, client, progress) for i, x in items))
            self.store.set_job_status(job_id, "completed")
        except asyncio.CancelledError:
            if job_id in self._cancelled:  # cancel_job; otherwise a shutdown, and the job resumes at next start
                self.store.set_job_status(job_id, "cancelled")
            else:
                self.store.flush()
            raise
        finally:
            progress.finished.set()
            self._tasks.pop(job_id, None)

    async def _item(
        self, job_id: str, idx: int, item: dict, sampling: SamplingOptions, client: str, progress: JobProgress
    ) -> None:
        try:
            messages = [ChatMessage.model_validate(m) for m in item["messages"]] if "messages" in item else None
            token_ids = prompt_token_ids(self.recorder.engine, item.get("prompt"), messages)
            adapter = Adapter(**item["adapter"]) if item.get("adapter") else None
            for attempt in range(SWAP_RETRIES + 1):  # an item a model swap cut off runs again on the new model
                try:
                    completion = await self.recorder.complete(
                        token_ids, sampling, client=client, kind="batch", job_id=job_id, adapter=adapter
                    )
                    break
                except SwapAborted:
                    if attempt == SWAP_RETRIES:
                        raise
            parse_structured(completion, sampling.json_schema)
        except Exception as exc:  # one bad item never fails the others
            if not isinstance(exc, InputError):
                log.exception("job %s item %d failed", job_id, idx)
            progress.failed += 1
            self.store.save_item(job_id, idx, {"status": "error", "error": str(exc) or type(exc).__name__})
            return
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
            },
        )

    def progress(self, job_id: str) -> JobProgress | None:
        """Live counts while the job runs in this process (None otherwise)."""
        return self._progress.get(job_id)

    async def wait(self, job_id: str, report: Callable[[JobProgress], Awaitable[None]], interval_s: float) -> None:
        """Wait for a job, calling `report` at most every `interval_s` (and once at the end)."""
        progress = self._progress[job_id]
        while not progress.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.finished.wait(), interval_s)
            await report(progress)

    async def cancel(self, job_id: str) -> bool:
        """Stop a running job: its engine requests are aborted, finished items kept. False if not running."""
        task = self._tasks.get(job_id)
        if task is None:
            return False
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
