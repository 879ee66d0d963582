"""The one retry policy (elearn_data.retry): what runs again, how often, and what does not."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest
from sqlalchemy.exc import DBAPIError

from elearn_data import dberrors, retry
from elearn_data.errors import (
    AbortedByRecovery,
    CommitPending,
    ConcurrencyConflict,
    ElearnDataError,
    InvalidInput,
    NotFound,
    ShardUnavailable,
)


class FakeUow:
    """What the policy reads of a unit of work: its commit state and its replicas."""

    def __init__(self, *, commit_started: bool = False) -> None:
        self.commit_started = commit_started
        self.choices: dict[str, Any] = {}


def failing(*errors: BaseException) -> tuple[Callable[[retry.Attempt], str], list[int]]:
    """Work that raises ``errors`` one per attempt, then returns "done"; and its attempts."""
    seen: list[int] = []

    def work(attempt: retry.Attempt) -> str:
        seen.append(attempt.number)
        if len(seen) <= len(errors):
            raise errors[len(seen) - 1]
        return "done"

    return work, seen


def run(policy: retry.RetryPolicy, work: Callable[[retry.Attempt], str]) -> str:
    return retry.run(policy, work, down_after_s=5.0, what="a test call")


def dropped() -> ShardUnavailable:
    """A dropped connection, as the translator reports it."""
    error = dberrors.translate(
        DBAPIError.instance("SELECT 1", {}, psycopg2.OperationalError("x"), psycopg2.Error), "eu"
    )
    assert isinstance(error, ShardUnavailable)
    return error


def test_retryability_is_decided_by_the_translated_error() -> None:
    assert dropped().disconnect
    assert not ShardUnavailable("eu", "statement timeout").disconnect
    assert retry.WRITES.retries(ConcurrencyConflict("x"), 1)
    assert retry.WRITES.retries(AbortedByRecovery("gid"), 3)
    assert not retry.WRITES.retries(ConcurrencyConflict("x"), 4)
    assert retry.WRITES.retries(dropped(), 1)
    assert not retry.WRITES.retries(dropped(), 2)
    assert not retry.WRITES.retries(dropped(), 1, commit_started=True)
    assert not retry.WRITES.retries(ShardUnavailable("eu", "read-only"), 1)
    assert not retry.WRITES.retries(CommitPending("eu", "gid"), 1)
    assert not retry.READS.retries(ConcurrencyConflict("x"), 1)
    assert retry.READS.retries(dropped(), 1)
    for error in (NotFound("x"), InvalidInput("x"), ElearnDataError("x"), RuntimeError("x")):
        assert not retry.WRITES.retries(error, 1)


def test_a_write_reruns_conflicts_three_times_then_raises() -> None:
    work, seen = failing(*(ConcurrencyConflict(f"c{i}") for i in range(3)))
    assert run(retry.WRITES, work) == "done"
    assert seen == [1, 2, 3, 4]
    work, seen = failing(*(ConcurrencyConflict(f"c{i}") for i in range(4)))
    with pytest.raises(ConcurrencyConflict, match="c3"):
        run(retry.WRITES, work)
    assert seen == [1, 2, 3, 4]


def test_a_dropped_connection_reruns_once() -> None:
    work, seen = failing(dropped())
    assert run(retry.READS, work) == "done"
    assert seen == [1, 2]
    work, seen = failing(dropped(), dropped())
    with pytest.raises(ShardUnavailable):
        run(retry.READS, work)
    assert seen == [1, 2]


def test_a_dropped_connection_during_the_commit_is_not_rerun() -> None:
    seen: list[int] = []

    def work(attempt: retry.Attempt) -> str:
        seen.append(attempt.number)
        attempt.track(FakeUow(commit_started=True))  # type: ignore[arg-type]
        raise dropped()

    with pytest.raises(ShardUnavailable):
        run(retry.WRITES, work)
    assert seen == [1]


@pytest.mark.parametrize(
    "error",
    [NotFound("x"), ShardUnavailable("eu", "statement timeout"), psycopg2.ProgrammingError("x")],
    ids=lambda e: type(e).__name__,
)
def test_anything_else_runs_once(error: BaseException) -> None:
    work, seen = failing(error)
    with pytest.raises(type(error)) as info:
        run(retry.WRITES, work)
    assert info.value is error
    assert seen == [1]


def test_a_retry_after_a_dropped_connection_marks_the_replicas_down() -> None:
    marked: list[tuple[str, str, float]] = []

    class Health:
        def __init__(self, label: str) -> None:
            self.label = label

        def mark_down(self, error: str, for_seconds: float) -> None:
            marked.append((self.label, error, for_seconds))

    class Node:
        def __init__(self, label: str, role: str) -> None:
            self.role = role
            self.health = Health(label)

    class Choice:
        def __init__(self, node: Node) -> None:
            self.node = node

    def work(attempt: retry.Attempt) -> str:
        if attempt.number == 1:
            uow = FakeUow()
            uow.choices = {
                "eu": Choice(Node("eu-r", "replica")),
                "na": Choice(Node("na-p", "primary")),
            }
            attempt.track(uow)  # type: ignore[arg-type]
            raise ShardUnavailable("eu", "connection lost", disconnect=True)
        return "done"

    assert retry.run(retry.READS, work, down_after_s=7.0, what="a read") == "done"
    assert marked == [("eu-r", "shard 'eu' is unavailable: connection lost", 7.0)]


def test_backoff_doubles_up_to_its_ceiling_and_ends_at_the_deadline() -> None:
    backoff = retry.Backoff(first_s=0.05, max_s=1.0)
    far = time.monotonic() + 3600
    assert list(itertools.islice(backoff.pauses(far), 7)) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert list(backoff.pauses(time.monotonic() - 1)) == []
