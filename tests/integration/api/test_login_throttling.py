"""Login throttling: per account, stored on the account's home shard, never shared.

Waits are read back from ``LoginThrottled.retry_after_s`` (computed by the
database's clock) and ended by moving ``blocked_until`` into the past as the
cluster superuser, so no test sleeps or asserts on wall-clock durations.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from elearn_data.cluster.local import DBNAME, LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.errors import LoginThrottled
from elearn_data.services.users import backoff_s
from tests.integration.api.helpers import PASSWORD, register

MAX_FAILURES = 3
FIRST_WAIT = 100.0
MAX_WAIT = 350.0


@pytest.fixture
def throttled(clean: Database, migrated: Settings) -> Iterator[Database]:
    settings = migrated.model_copy(
        update={
            "login": migrated.login.model_copy(
                update={
                    "max_failures": MAX_FAILURES,
                    "backoff_s": FIRST_WAIT,
                    "max_backoff_s": MAX_WAIT,
                }
            ),
            "recover_interval_s": 0.0,
        }
    )
    db = connect(settings)
    yield db
    db.close()


def _sql(
    cluster: LocalCluster, shard: str, query: str, *params: object
) -> list[tuple[object, ...]]:
    conn = cluster.admin_connect(cluster.state().primary_of(shard), dbname=DBNAME)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _end_wait(cluster: LocalCluster, shard: str, user: uuid.UUID) -> None:
    _sql(
        cluster,
        shard,
        "UPDATE login_throttles SET blocked_until = now() - interval '1 second' WHERE user_id = %s",
        str(user),
    )


def _email(db: Database, user: uuid.UUID) -> str:
    return db.users.get(user).email


def test_the_backoff_doubles_up_to_the_maximum() -> None:
    waits = [
        backoff_s(n, max_failures=5, first_s=30, max_s=900) for n in (1, 4, 5, 6, 7, 9, 10, 500)
    ]
    assert waits == [0, 0, 30, 60, 120, 480, 900, 900]


def test_failures_throttle_the_account_with_doubling_waits_and_a_success_resets(
    throttled: Database, cluster: LocalCluster
) -> None:
    db = throttled
    user = register(db, "europe")
    email = _email(db, user)
    for _ in range(MAX_FAILURES - 1):
        assert db.users.authenticate(email, "wrong password") is None
    assert db.users.authenticate(email, "wrong password") is None  # the MAX_FAILURES-th
    # Now even the right password is not checked until the wait passes.
    with pytest.raises(LoginThrottled) as info:
        db.users.authenticate(email, PASSWORD)
    assert 0 < info.value.retry_after_s <= FIRST_WAIT
    # The counter lives on the account's home shard, and only there.
    assert _sql(
        cluster, "eu", "SELECT failures FROM login_throttles WHERE user_id = %s", str(user)
    ) == [(MAX_FAILURES,)]
    for other in ("na", "apac"):
        assert _sql(cluster, other, "SELECT count(*) FROM login_throttles") == [(0,)]

    # Each further failure doubles the wait, up to the maximum.
    for expected in (2 * FIRST_WAIT, MAX_WAIT, MAX_WAIT):
        _end_wait(cluster, "eu", user)
        assert db.users.authenticate(email, "wrong again") is None
        with pytest.raises(LoginThrottled) as info:
            db.users.authenticate(email, PASSWORD)
        assert expected / 2 < info.value.retry_after_s <= expected

    _end_wait(cluster, "eu", user)
    assert db.users.authenticate(email, PASSWORD) is not None
    assert _sql(cluster, "eu", "SELECT count(*) FROM login_throttles") == [(0,)]
    # Reset: one failure is one failure again.
    assert db.users.authenticate(email, "wrong password") is None
    assert db.users.authenticate(email, PASSWORD) is not None


def test_throttling_one_account_never_affects_another(
    throttled: Database, cluster: LocalCluster
) -> None:
    db = throttled
    attacked = _email(db, register(db, "europe"))
    bystanders = [_email(db, register(db, region)) for region in ("europe", "asia", "europe")]
    stop = threading.Event()
    errors: list[BaseException] = []
    outcomes: list[str] = []

    def attack() -> None:
        while not stop.is_set():
            try:
                db.users.authenticate(attacked, "guess")
                outcomes.append("failed")
            except LoginThrottled:
                outcomes.append("throttled")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    try:
        logins = [db.users.authenticate(email, PASSWORD) for _ in range(5) for email in bystanders]
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    assert errors == []
    assert all(view is not None for view in logins)
    assert "throttled" in outcomes
    # Concurrent attempts on one account queue on its row: no more failures are
    # counted than attempts were let through (the count is exact).
    assert (
        outcomes.count("failed")
        == _sql(cluster, "eu", "SELECT failures FROM login_throttles")[0][0]
    )
    assert outcomes.count("failed") == MAX_FAILURES
