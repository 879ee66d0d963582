"""The shared GCRA limiter: exact limits, exact waits, one budget for several processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from elearn_data.config import RateLimit
from elearn_data.web.ratelimit import RateLimiter, retry_after_header

LIMIT = RateLimit(requests=10, per_s=60.0)


def test_a_burst_takes_exactly_the_limit_then_waits_the_refill(tmp_path: Path) -> None:
    limiter = RateLimiter(tmp_path / "rl.sqlite3")
    now = 1_000_000.0
    assert [limiter.hit("k", LIMIT, now=now) for _ in range(10)] == [None] * 10
    wait = limiter.hit("k", LIMIT, now=now)
    assert wait == pytest.approx(6.0)  # one slot refills every 60/10 s
    assert limiter.hit("other", LIMIT, now=now) is None
    assert limiter.hit("k", LIMIT, now=now + 5.9) is not None
    assert limiter.hit("k", LIMIT, now=now + 6.0) is None
    # A refused request takes no slot: the wait does not grow while refused.
    assert limiter.hit("k", LIMIT, now=now + 6.0) == pytest.approx(6.0)
    # An idle bucket refills to a full burst, never more.
    burst = [limiter.hit("k", LIMIT, now=now + 10_000) for _ in range(11)]
    assert burst.count(None) == 10
    limiter.close()


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(2.01) == "3"


def _hammer(path: str, hits: int, queue: multiprocessing.Queue[int]) -> None:
    limiter = RateLimiter(Path(path))
    allowed = sum(
        limiter.hit("shared", RateLimit(requests=50, per_s=3600.0)) is None for _ in range(hits)
    )
    limiter.close()
    queue.put(allowed)


def test_processes_share_one_budget(tmp_path: Path) -> None:
    path = tmp_path / "rl.sqlite3"
    RateLimiter(path).close()
    # fork: the children need no fresh interpreter (spawn would re-import the package).
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(path), 500, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    allowed = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert sum(allowed) == 50
