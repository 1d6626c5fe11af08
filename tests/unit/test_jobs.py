"""Pure job bookkeeping: `JobProgress` (the live counts and the progress line a client hears) and `page_bounds`
(how a job's results split into pages of at most `max_result_chars` of JSON), on a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from mcp_llm.core.jobs import JobProgress, item_json, page_bounds
from mcp_llm.core.store import Store
from mcp_llm.settings import Settings

# --- JobProgress ---


def test_done_counts_completed_and_failed_items() -> None:
    progress = JobProgress(total=10, completed=3, failed=2)
    assert progress.done == 5
    progress.completed += 1
    assert progress.done == 6


def test_a_running_job_says_counts_rate_time_and_eta() -> None:
    progress = JobProgress(total=10, completed=3, failed=1, output_tokens=1200, started=time.monotonic() - 120)
    # 4 of 10 done in 120 s: 6 more take 180 s at that pace; 1200 tokens in 120 s is 10 tok/s
    assert progress.message() == "4/10 items, 1 failed, 10 tok/s, 2m00s so far, ETA 3m00s"


@pytest.mark.parametrize(
    ("completed", "failed", "expected"),
    [
        (0, 0, "0/3 items, 0 failed, 0 tok/s, 45s so far"),  # nothing done yet: no pace to guess from
        (2, 1, "3/3 items, 1 failed, 0 tok/s, 45s so far"),  # all done: nothing left to wait for
    ],
)
def test_no_eta_before_the_first_item_or_after_the_last(completed: int, failed: int, expected: str) -> None:
    progress = JobProgress(total=3, completed=completed, failed=failed, started=time.monotonic() - 45)
    assert progress.message() == expected


def test_a_new_job_starts_now_unfinished_with_an_event_of_its_own() -> None:
    first, second = JobProgress(total=1), JobProgress(total=1)
    assert first.message() == "0/1 items, 0 failed, 0 tok/s, 0s so far"
    assert first.finished is not second.finished
    first.finished.set()
    assert first.finished.is_set() and not second.finished.is_set()
    assert isinstance(first.finished, asyncio.Event)


# --- page_bounds ---

BOUND = 1000  # the smallest max_result_chars the settings allow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "mcp-llm.db")
    yield db
    db.close()


def job(store: Store, texts: list[str | None], status: str = "done") -> str:
    """A job with one item per text: done with that text (None: still pending); returns its id."""
    job_id = f"job-{len(store.jobs())}"
    store.create_job(job_id, "batch", {}, [{"prompt": f"item {i}"} for i in range(len(texts))])
    for idx, text in enumerate(texts):
        if text is not None:
            result = {"status": status, "prompt_tokens": 4, "completion_tokens": 2, "total_ms": 10.0}
            store.save_item(job_id, idx, result | ({"text": text} if status == "done" else {"error": text}))
    store.flush()
    return job_id


def bounds(store: Store, job_id: str) -> list[tuple[int, int]]:
    return page_bounds(SimpleNamespace(settings=Settings(max_result_chars=BOUND), store=store), job_id)


def page_json(store: Store, job_id: str, offset: int, count: int) -> str:
    """A page's items as JSON, as the results resource writes them."""
    return json.dumps([item_json(row) for row in store.items(job_id, offset=offset, limit=count)])


def test_a_small_job_is_one_page(store: Store) -> None:
    assert bounds(store, job(store, ["Paris", "Lyon", None])) == [(0, 3)]


def test_a_job_without_items_has_one_empty_page(store: Store) -> None:
    assert bounds(store, job(store, [])) == [(0, 0)]


def test_pages_cover_every_item_in_order_and_each_is_as_full_as_the_bound_allows(store: Store) -> None:
    # items of 0 to 850 characters as JSON, each under the bound (an é is 6 characters: `\u00e9`)
    texts: list[str | None] = [("é" if i % 3 else "word ") * (i * 37 % 100) for i in range(60)]
    texts[7] = texts[30] = None  # still pending: a page holds them too
    job_id = job(store, texts)
    pages = bounds(store, job_id)
    assert len(pages) > 5
    assert [offset for offset, _ in pages] == [sum(count for _, count in pages[:n]) for n in range(len(pages))]
    assert sum(count for _, count in pages) == len(texts)
    for n, (offset, count) in enumerate(pages):
        assert count >= 1
        assert len(page_json(store, job_id, offset, count)) <= BOUND, f"page {n + 1} passes the bound"
        if n + 1 < len(pages):  # the next item would not have fitted
            assert len(page_json(store, job_id, offset, count + 1)) > BOUND, f"page {n + 1} closed early"


def test_a_page_exactly_at_the_bound_is_kept_one_char_more_splits(store: Store) -> None:
    empty = len(page_json(store, job(store, ["", ""]), 0, 2))
    room = BOUND - empty  # characters of text two items may add before their page passes the bound
    exact = job(store, ["a" * (room // 2), "b" * (room - room // 2)])
    assert len(page_json(store, exact, 0, 2)) == BOUND
    assert bounds(store, exact) == [(0, 2)]
    over = job(store, ["a" * (room // 2), "b" * (room - room // 2 + 1)])
    assert bounds(store, over) == [(0, 1), (1, 1)]


def test_an_item_larger_than_the_bound_gets_a_page_of_its_own(store: Store) -> None:
    job_id = job(store, ["short", "x" * 5000, "short", "short"])
    assert bounds(store, job_id) == [(0, 1), (1, 1), (2, 2)]


def test_failed_items_are_paged_with_their_errors(store: Store) -> None:
    job_id = job(store, ["boom " * 150, "boom " * 150], status="error")
    pages = bounds(store, job_id)
    assert pages == [(0, 1), (1, 1)]
    assert "boom" in page_json(store, job_id, 1, 1)
