"""`InflightLimiter`: at most `per_client` interactive requests per client and `total` in all; past either bound
a request is refused at once (Busy, naming the bound), and a slot is given back however its request ends."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from mcp_llm.core.limits import InflightLimiter
from mcp_llm.errors import Busy, Unavailable


def test_one_client_is_held_to_its_own_bound_while_others_go_on() -> None:
    limiter = InflightLimiter(total=10, per_client=2)
    with ExitStack() as held:
        held.enter_context(limiter.slot("alice"))
        held.enter_context(limiter.slot("alice"))
        with pytest.raises(Busy, match=r"client 'alice' already has 2 requests in flight \(limit 2\)"):
            held.enter_context(limiter.slot("alice"))
        held.enter_context(limiter.slot("bob"))  # another client is not held back by alice's bound
        assert limiter.inflight == 3  # the refusal took no slot
    assert limiter.inflight == 0


def test_the_total_bound_holds_across_clients() -> None:
    limiter = InflightLimiter(total=3, per_client=2)
    with ExitStack() as held:
        for client in ("alice", "alice", "bob"):
            held.enter_context(limiter.slot(client))
        with pytest.raises(Busy, match=r"3 requests are in flight on this server \(limit 3\)"):
            held.enter_context(limiter.slot("carol"))  # carol has none yet: the total refuses her
        assert limiter.inflight == 3


def test_when_both_bounds_are_reached_the_total_is_named() -> None:
    limiter = InflightLimiter(total=1, per_client=1)
    with limiter.slot("alice"), pytest.raises(Busy, match="on this server"), limiter.slot("alice"):
        pass


def test_busy_is_an_unavailable_error_that_suggests_batch() -> None:
    limiter = InflightLimiter(total=1, per_client=1)
    with limiter.slot("alice"), pytest.raises(Unavailable) as caught, limiter.slot("bob"):
        pass
    assert isinstance(caught.value, Busy) and "use `batch`" in str(caught.value)


def test_a_failing_request_gives_its_slot_back() -> None:
    limiter = InflightLimiter(total=1, per_client=1)
    for _ in range(3):  # each time the slot is free again
        with pytest.raises(RuntimeError, match="engine said no"), limiter.slot("alice"):
            assert limiter.inflight == 1
            raise RuntimeError("engine said no")
        assert limiter.inflight == 0
    with limiter.slot("alice"):
        assert limiter.inflight == 1


def test_a_client_whose_requests_ended_may_use_its_whole_bound_again() -> None:
    limiter = InflightLimiter(total=100, per_client=2)
    for _ in range(5):
        with limiter.slot("alice"), limiter.slot("alice"):
            assert limiter.inflight == 2
    assert limiter.inflight == 0
