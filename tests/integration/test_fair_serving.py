"""Fair serving on the real engine: an interactive call sent behind 200 queued bulk items finishes ahead of them
(vLLM's priority scheduler), where the same call sent as bulk waits its turn; a job's items enter the engine through
the window, never more at once; the window goes round-robin across clients, so a client with one job is not starved
by a client with three, and two equal jobs started together finish together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from mcp import Client

from mcp_llm.core.fairness import LEND_AFTER_S, FairGate
from mcp_llm.core.services import Services
from mcp_llm.schemas import SamplingOptions

pytestmark = pytest.mark.anyio

BULK = {"max_tokens": 16, "ignore_eos": True, "wait": False}
SHORT = {"prompt": "Hello", "max_tokens": 8, "ignore_eos": True, "temperature": 0}


def done_items(services: Services, job_id: str) -> int:
    services.store.flush()
    return services.store.item_counts(job_id).get("done", 0)


async def items_done_when_a_call_returns(client: Client, services: Services, priority: str) -> int:
    """Two engine batches' worth of bulk items, then one short call: how many items were done when it returned."""
    prompts = ["Write a long story:"] * (2 * services.engine.config().max_num_seqs)
    job = (await client.call_tool("batch", BULK | {"prompts": prompts})).structured_content["job"]["job_id"]
    await asyncio.sleep(0.5)  # the bulk items are queued in the engine first
    result = await client.call_tool("generate", SHORT | {"priority": priority})
    assert not result.is_error, result.content
    done = done_items(services, job)
    await client.call_tool("cancel_job", {"job_id": job})
    return done


async def test_an_interactive_call_goes_ahead_of_queued_bulk_items(client: Client, services: Services) -> None:
    config = services.engine.config()
    assert config.scheduling_policy == "priority"
    before = services.jobs.gate  # a window wider than the engine: every bulk item waits in vLLM's own queue
    services.jobs.gate = FairGate(2 * config.max_num_seqs)
    try:
        interactive = await items_done_when_a_call_returns(client, services, "interactive")
        as_bulk = await items_done_when_a_call_returns(client, services, "bulk")
    finally:
        services.jobs.gate = before
    # interactive: in the first free slot, after the running batch; as bulk: behind the items queued before it
    assert interactive <= config.max_num_seqs < as_bulk, (interactive, as_bulk, config.max_num_seqs)


@pytest.fixture
def window(services: Services) -> Iterator[FairGate]:
    """A window of 4 slots for this test's jobs (the server's is twice max_num_seqs)."""
    before = services.jobs.gate
    services.jobs.gate = FairGate(4)
    try:
        yield services.jobs.gate
    finally:
        services.jobs.gate = before


def submit(services: Services, client: str, items: int) -> str:
    inputs = [{"prompt": f"Count to {i}:"} for i in range(items)]
    return services.jobs.submit(inputs, SamplingOptions(max_tokens=12, ignore_eos=True, temperature=0), client)


async def finished_at(services: Services, job_ids: list[str]) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """When each job ended (monotonic) and how many items each job had done then, watching the engine's running
    requests meanwhile."""
    ends: dict[str, float] = {}
    done_then: dict[str, dict[str, int]] = {}
    while len(ends) < len(job_ids):
        for job_id in job_ids:
            if job_id not in ends and services.jobs.progress(job_id).finished.is_set():
                ends[job_id] = time.monotonic()
                done_then[job_id] = {j: services.jobs.progress(j).completed for j in job_ids}
        assert services.engine.num_unfinished_requests() <= 4  # the window holds in the engine too
        await asyncio.sleep(0.01)
    return ends, done_then


async def test_the_window_holds_and_a_client_with_three_jobs_does_not_starve_one_with_one(
    services: Services, window: FairGate
) -> None:
    many = [submit(services, "carol", 12) for _ in range(3)]  # carol asks first, three times
    one = submit(services, "dave", 12)
    ends, done_then = await finished_at(services, [*many, one])
    assert window.peak == 4 and window.used == 0
    assert ends[one] < max(ends[j] for j in many), "dave's one job ends before carol's three"
    # one for one while both wait: carol has about dave's 12 done (plus what was in the window), not all 36
    assert sum(done_then[one][j] for j in many) <= 12 + 4, done_then[one]


async def test_a_job_alone_borrows_the_interactive_seats_until_a_call_comes(client: Client, services: Services) -> None:
    """The server's own window: a job alone fills every engine seat; while an interactive call runs the spare
    seats are the call's again (no bulk item takes a freed one past the window); the job still ends whole."""
    gate, seats = services.jobs.gate, services.engine.config().max_num_seqs
    assert gate.window < seats == gate.window + gate.spare
    await asyncio.sleep(LEND_AFTER_S)  # earlier tests' calls are over
    job = submit(services, "bulk-alone", 3 * seats)
    for _ in range(200):
        if gate.used == seats:
            break
        await asyncio.sleep(0.05)
    assert gate.used == seats, (gate.used, seats)  # the reserved seats are lent out
    call = asyncio.create_task(client.call_tool("generate", SHORT))
    while not call.done():
        await asyncio.sleep(0.01)
        if services.limiter.inflight:
            assert gate.capacity == gate.window  # the call is in flight: bulk keeps to the window
    assert not call.result().is_error
    await services.jobs.progress(job).finished.wait()
    assert done_items(services, job) == 3 * seats and gate.used == 0


async def test_two_equal_jobs_started_together_end_together(services: Services, window: FairGate) -> None:
    started = time.monotonic()
    first, second = submit(services, "erin", 16), submit(services, "frank", 16)
    ends, _ = await finished_at(services, [first, second])
    spans = sorted(end - started for end in ends.values())
    assert spans[0] >= 0.8 * spans[1], spans  # within 20 % of each other


@pytest.mark.parametrize(
    ("tool", "arguments", "what"),
    [
        ("generate", {"prompt": "x" * 4_000_001}, "`prompt` has 4,000,001 characters"),
        ("count_tokens", {"messages": [{"role": "user", "content": "x" * 4_000_001}]}, "`messages` has 4,000,001"),
        ("batch", {"prompts": ["x" * 2_000_001] * 2}, "The batch (all items together) has 4,000,002"),
        ("embed", {"texts": ["x" * 2_000_001] * 2}, "`texts` (all together) has 4,000,002"),
    ],
)
async def test_inputs_over_the_size_cap_are_refused_before_any_work(
    client: Client, services: Services, tool: str, arguments: dict, what: str
) -> None:
    assert services.settings.max_input_chars == 4_000_000
    result = await client.call_tool(tool, arguments)
    assert result.is_error and what in result.content[0].text and "max_input_chars" in result.content[0].text
