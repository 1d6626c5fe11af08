"""The fair window (core/fairness): never more than `capacity` slots held; slots go round-robin across clients, so a
client with three waiting jobs gets no more turns than a client with one; jobs asking at the same moment share the
window from their first item; a cancelled waiter gives up its place (and a slot granted as it was cancelled passes
on)."""

from __future__ import annotations

import asyncio

import pytest

from mcp_llm.core.fairness import FairGate

pytestmark = pytest.mark.anyio


async def test_turns_alternate_between_clients_whatever_their_number_of_waiters() -> None:
    gate, order = FairGate(1), []
    await gate.acquire("holder")

    async def item(client: str) -> None:
        await asyncio.sleep(0.001)
        gate.release(client)

    async def job(client: str, n: int) -> None:  # as the job runner does: the next item waits while one runs
        items = []
        for _ in range(n):
            await gate.acquire(client)
            order.append(client)
            items.append(asyncio.create_task(item(client)))
        await asyncio.gather(*items)

    # carol runs three jobs, dave one: each job asks for 4 slots, one at a time
    tasks = [asyncio.create_task(job("carol", 4)) for _ in range(3)] + [asyncio.create_task(job("dave", 4))]
    await asyncio.sleep(0.01)
    gate.release("holder")
    await asyncio.gather(*tasks)
    first = order[:8]
    assert first.count("dave") == 4 and first.count("carol") == 4, order  # one for one while both wait
    assert gate.used == 0 and gate.peak == 1


async def test_the_window_holds_and_slots_return_when_nobody_waits() -> None:
    gate, held, most = FairGate(3), 0, 0

    async def item() -> None:
        nonlocal held, most
        async with gate.slot("c"):
            held += 1
            most = max(most, held)
            await asyncio.sleep(0.001)
            held -= 1

    await asyncio.gather(*(item() for _ in range(50)))
    assert most == 3 and gate.peak == 3 and gate.used == 0 and gate.waiting == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_a_granted_one_passes_its_slot_on() -> None:
    gate = FairGate(1)
    await gate.acquire("a")
    waiter = asyncio.create_task(gate.acquire("b"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    gate.release("a")
    await asyncio.sleep(0)
    assert gate.used == 0 and not gate.held

    await gate.acquire("a")
    granted = asyncio.create_task(gate.acquire("b"))
    nxt = asyncio.create_task(gate.acquire("c"))
    await asyncio.sleep(0)
    gate.release("a")
    await asyncio.sleep(0)  # the dispatcher grants b the slot ...
    granted.cancel()  # ... and b is cancelled before it ran: c gets it
    with pytest.raises(asyncio.CancelledError):
        await granted
    await asyncio.wait_for(nxt, 1)
    assert gate.used == 1 and dict(gate.held) == {"c": 1}


async def test_jobs_asking_at_the_same_moment_share_the_window_from_their_first_item() -> None:
    gate = FairGate(8)
    first = [gate.request("a") for _ in range(8)]  # a asks for the whole window first ...
    second = [gate.request("b") for _ in range(8)]  # ... b in the same moment
    await asyncio.sleep(0)
    assert sum(f.done() for f in first) == 4 and sum(f.done() for f in second) == 4
    assert dict(gate.held) == {"a": 4, "b": 4}


async def test_a_client_alone_uses_the_whole_window_and_shares_it_when_another_comes() -> None:
    gate = FairGate(8)
    alone = [gate.request("a") for _ in range(12)]
    await asyncio.sleep(0)
    assert sum(f.done() for f in alone) == 8  # nobody else: all of it
    late = [gate.request("b") for _ in range(8)]
    for _ in range(4):  # a's items end one by one: each freed slot goes to b until b has its half
        gate.release("a")
        await asyncio.sleep(0)
    assert sum(f.done() for f in late) == 4 and sum(f.done() for f in alone) == 8


def test_the_default_window_leaves_seats_free_for_interactive_calls() -> None:
    from mcp_llm.core.services import job_window_for

    assert [job_window_for(n) for n in (1, 4, 16, 128, 256)] == [1, 2, 14, 112, 224]


@pytest.mark.parametrize(("front_ends", "window", "spare"), [(1, 112, 16), (2, 56, 8), (4, 28, 4)])
def test_each_front_end_windows_its_share_of_the_engine_seats(front_ends: int, window: int, spare: int) -> None:
    """--api-server-count N: N front-ends' jobs together keep to one engine's window (128 seats here)."""
    from types import SimpleNamespace

    from mcp_llm.core.limits import InflightLimiter
    from mcp_llm.core.services import job_gate
    from mcp_llm.settings import Settings

    engine = SimpleNamespace(config=lambda: SimpleNamespace(max_num_seqs=128))
    gate = job_gate(Settings(api_server_count=front_ends), engine, InflightLimiter(8, 8))  # type: ignore[arg-type]
    assert (gate.window, gate.spare) == (window, spare)


async def test_reserved_seats_are_lent_to_bulk_work_only_while_interactive_calls_are_quiet() -> None:
    quiet = True
    gate = FairGate(6, 2, lambda: quiet)  # 8 seats, 2 kept for interactive calls
    held = [gate.request("bulk") for _ in range(10)]
    await asyncio.sleep(0)
    assert sum(f.done() for f in held) == 8 == gate.used  # a job alone takes every seat
    quiet = False  # an interactive call runs: freed seats go back to the window, not to the waiting bulk items
    gate.release("bulk")
    gate.release("bulk")
    await asyncio.sleep(0)
    assert gate.used == 6 and sum(f.done() for f in held) == 8
    gate.release("bulk")
    await asyncio.sleep(0)
    assert gate.used == 6 and sum(f.done() for f in held) == 9  # inside the window again: one more granted
    quiet = True
    gate.release("bulk")  # quiet again: the next release lends the spare seats out
    await asyncio.sleep(0)
    assert gate.used == 6 and sum(f.done() for f in held) == 10


def test_the_limiter_says_how_long_interactive_calls_have_been_quiet() -> None:
    from mcp_llm.core.limits import InflightLimiter

    limiter = InflightLimiter(4, 4)
    assert limiter.quiet_for() == float("inf")  # none yet
    with limiter.slot("a"):
        assert limiter.quiet_for() == 0.0
    assert 0.0 < limiter.quiet_for() < 1.0
