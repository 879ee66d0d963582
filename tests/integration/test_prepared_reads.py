"""The point-read fast path: server-side prepared statements, driver-level autocommit.

``db.users.get`` runs a statement prepared once per pooled connection and sent
with ``EXECUTE``; replica connections stay in autocommit between reads; a
writer reads its WAL position without leaving the connection in autocommit.
These tests pin the behaviour those shortcuts must keep: the same result as
SQLAlchemy's own execution, recovery when the server forgot the statement or
the connection died, and statements visible to engine listeners.
"""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.exc import DBAPIError

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import NotFound, ShardUnavailable
from elearn_data.models import User, UserProfile
from elearn_data.regions import Region
from elearn_data.repositories import users as users_repository
from elearn_data.repositories.users import USER_BY_ID
from elearn_data.repositories.views import UserView
from elearn_data.sharding.consistency import CausalToken
from elearn_data.sharding.unit_of_work import PreparedRead, UnitOfWork, _fetch_prepared
from tests.integration.factories import add_user
from tests.integration.observe import recording
from tests.support import forget_failures


def _with_profile(db: Database, region: Region = Region.EUROPE) -> uuid.UUID:
    user_id = add_user(db, region)
    with db.writer(region) as uow:
        uow.session.add(UserProfile(user_id=user_id, country="France", city="Lyon", bio="50% off"))
    return user_id


def _core_view(db: Database, user_id: uuid.UUID) -> UserView:
    with db.reader(Region.EUROPE) as uow:
        row = uow.execute(USER_BY_ID, {"user_id": user_id}, shard="eu").mappings().one()
        return UserView.from_row(row)


def _replica_dbapi(db: Database) -> Any:
    """The driver connection a reader of ``eu`` gets from the replica's pool (checked back in)."""
    with db.reader(Region.EUROPE, token=CausalToken()) as uow:
        conn = uow.connection("eu")
        assert uow.choices["eu"].node.role == "replica"
        return conn.connection.dbapi_connection


def test_the_prepared_point_read_returns_what_sqlalchemy_returns(clean: Database) -> None:
    user_id = _with_profile(clean)
    fast = clean.users.get(user_id)
    assert fast == _core_view(clean, user_id)
    assert isinstance(fast.id, uuid.UUID)
    assert fast.created_at.tzinfo is not None
    assert fast.bio == "50% off"


def test_a_user_without_a_profile_and_an_unknown_id_behave_as_before(clean: Database) -> None:
    user_id = add_user(clean, Region.ASIA)
    view = clean.users.get(user_id)
    assert view.region == "asia" and view.country is None
    with pytest.raises(NotFound):
        clean.users.get(ids.new_id(Region.ASIA))
    with pytest.raises(NotFound):
        clean.users.get(uuid.uuid4())


def test_replica_connections_stay_in_autocommit_and_primaries_do_not(clean: Database) -> None:
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    assert _replica_dbapi(clean).autocommit is True
    # A writer read its WAL position in autocommit and put the connection back.
    with clean.writer(Region.EUROPE) as uow:
        uow.session.add(UserProfile(user_id=add_user(clean, Region.EUROPE)))
        primary = uow.connection("eu").connection.dbapi_connection
    assert primary.autocommit is False
    assert primary.isolation_level is None  # the server default, no SET pending
    assert uow.committed_token.get("eu") is not None


def test_a_statement_the_server_forgot_is_prepared_again(clean: Database) -> None:
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    dbapi = _replica_dbapi(clean)
    with dbapi.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    assert clean.users.get(user_id).id == user_id


def test_a_statement_the_server_already_has_is_just_executed(clean: Database) -> None:
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    with clean.reader(Region.EUROPE, token=CausalToken()) as uow:
        conn = uow.connection("eu")
        conn.connection.info.pop("elearn_prepared", None)  # we forgot; the server did not
        row = uow.fetch_prepared(_prepared(), (user_id,), shard="eu")
    assert row is not None and row[0] == user_id


def _prepared() -> PreparedRead:
    return users_repository.PREPARED_USER_BY_ID


def test_a_replica_connection_killed_between_reads_is_replaced(
    clean: Database, cluster: LocalCluster
) -> None:
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    state = cluster.state()
    conn = cluster.admin_connect(state.replicas_of("eu")[0], dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'elearn' AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
    finally:
        conn.close()
    # The dead pooled connection fails on first use and the read is retried.
    for _ in range(5):
        assert clean.users.get(user_id).id == user_id
    forget_failures(clean, "eu")  # the retry marked the replica down: back in rotation


def test_a_disconnect_on_the_fast_path_invalidates_the_connection_once_and_the_pool(
    clean: Database, cluster: LocalCluster
) -> None:
    # The backend is gone before the read, but the pooled connection is used
    # directly (no checkout hook in between): the read itself meets the disconnect.
    engine = clean.cluster.engines.replicas("eu")[0].engine
    fairy = engine.raw_connection()
    pid = fairy.dbapi_connection.info.backend_pid
    conn = cluster.admin_connect(cluster.state().replicas_of("eu")[0], dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while True:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cur.fetchone()[0] == 0:
                    break
                assert time.monotonic() < deadline, "the backend never exited"
                time.sleep(0.02)
    finally:
        conn.close()
    before = engine.pool._invalidate_time
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # invalidating it twice would warn
        with pytest.raises(DBAPIError) as info:
            _fetch_prepared(fairy, engine, _prepared(), (uuid.uuid4(),), fairy.invalidate)
    assert info.value.connection_invalidated
    assert not fairy.is_valid
    # Every connection the pool made before is replaced at its next checkout.
    assert engine.pool._invalidate_time > before


def test_listeners_see_the_point_read_as_sqlalchemy_sends_it(
    clean: Database, cluster: LocalCluster
) -> None:
    user_id = _with_profile(clean)
    with recording(clean, cluster) as seen:
        assert clean.users.get(user_id).id == user_id
    statements = [" ".join(sql.split()) for _, _, sql in seen.seen]
    assert any(
        "FROM users LEFT OUTER JOIN user_profiles" in " ".join(sql.split()) for sql in statements
    )
    assert not any(sql.startswith(("PREPARE", "EXECUTE")) for sql in statements)
    # Listeners removed: the fast path is back.
    clean.users.get(user_id)


def test_inside_a_snapshot_the_point_read_goes_through_sqlalchemy(clean: Database) -> None:
    user_id = _with_profile(clean)
    with clean.reader(Region.EUROPE, snapshot=True) as uow:
        row = uow.fetch_prepared(_prepared(), (user_id,), shard="eu")
        again = uow.session.scalar(select(User.id).where(User.id == user_id))
    assert row is not None and row[0] == user_id == again


def test_a_prepared_read_refuses_a_statement_it_cannot_run_raw() -> None:
    with pytest.raises(ValueError, match="name"):
        PreparedRead("Bad Name", USER_BY_ID, ("user_id",))
    with pytest.raises(ValueError, match="parameters"):
        PreparedRead("elearn_x", USER_BY_ID, ("id",))


def test_a_unit_of_work_is_its_own_context_manager(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    uow = UnitOfWork(clean.cluster, "reader", "eu", token=clean.token)  # sees the user
    with uow:
        found = uow.session.get(User, user_id)
    assert found is not None
    with pytest.raises(RuntimeError):
        uow.connection("na")  # finished: no new connection
    failing = UnitOfWork(clean.cluster, "reader", "eu", token=CausalToken())
    with pytest.raises(NotFound), failing:
        failing.router.shard_of_owner(uuid.uuid4())


def test_a_point_read_uses_the_replicas_pooled_connection_and_keeps_it_for_the_unit(
    clean: Database,
) -> None:
    """No Connection around the pooled connection; a later statement runs on that same one."""
    user_id = _with_profile(clean)
    clean.users.get(user_id)  # the lag check is fresh: no query decides the replica
    with clean.reader(Region.EUROPE, token=CausalToken()) as uow:
        row = uow.fetch_prepared(_prepared(), (user_id,), shard="eu")
        assert row is not None and row[0] == user_id
        assert uow.choices["eu"].node.role == "replica"
        assert uow.shards_touched == ("eu",)
        pooled = uow._pooled["eu"]
        first = pooled.dbapi_connection
        conn = uow.connection("eu")  # the same pooled connection, now with a Connection
        assert conn.connection.dbapi_connection is first
        assert uow.execute(select(User.id).where(User.id == user_id), shard="eu").scalar() == (
            user_id
        )
        assert uow.fetch_prepared(_prepared(), (user_id,), shard="eu") == row
        assert uow.shards_touched == ("eu",)
    pool = uow.choices["eu"].node.engine.pool
    assert pool.checkedout() == 0  # checked back in at the end of the unit


def test_a_token_the_replica_has_not_replayed_takes_the_connection_path(clean: Database) -> None:
    """A causal wait needs a query: the read gets a Connection, and sees the write."""
    user_id = _with_profile(clean)
    token = clean.token
    assert token.get("eu") is not None
    for node in clean.cluster.engines.replicas("eu"):
        node.health.replay_lsn = 0  # forget what the replica was seen to replay
    with clean.reader(Region.EUROPE, token=token) as uow:
        row = uow.fetch_prepared(_prepared(), (user_id,), shard="eu")
        assert row is not None and row[0] == user_id
        assert "eu" in uow._connections and "eu" not in uow._pooled
        assert uow.choices["eu"].reason in {"replica-caught-up", "primary-fallback"}


def test_an_engine_connect_listener_sees_the_point_reads_connection(clean: Database) -> None:
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    engines = [node.engine for node in clean.cluster.engines.replicas("eu")]
    made: list[object] = []

    def on_connect(conn: object) -> None:
        made.append(conn)

    for engine in engines:
        event.listen(engine, "engine_connect", on_connect)
    try:
        assert clean.users.get(user_id).id == user_id
    finally:
        for engine in engines:
            event.remove(engine, "engine_connect", on_connect)
    assert made  # observed: the read went through a Connection


_NEWEST = PreparedRead(
    "elearn_test_newest_generic",
    select(User.id).order_by(User.created_at.desc(), User.id).limit(bindparam("limit")),
    ("limit",),
    generic_plan=True,
)


@pytest.mark.parametrize("generic", [True, False])
def test_a_generic_plan_read_is_planned_once_and_answers_as_a_custom_one(
    clean: Database, generic: bool
) -> None:
    users = [add_user(clean, Region.EUROPE) for _ in range(3)]
    query = (
        _NEWEST
        if generic
        else PreparedRead(_NEWEST.name + "_custom", _NEWEST.statement, ("limit",))
    )
    newest = sorted(users, reverse=True)  # ids grow with time within a process
    with clean.reader(Region.EUROPE) as uow:
        for limit in (1, 2, 3, 2, 1, 3, 2, 1):  # more than the 5 custom plans PostgreSQL tries
            rows = uow.fetch_prepared_rows(query, (limit,), shard="eu")
            assert [r[0] for r in rows] == newest[:limit]
        plans = uow.execute(
            text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = :n"),
            {"n": query.name},
            shard="eu",
        ).one()
    if generic:
        assert tuple(plans) == (8, 0)
    else:
        # PostgreSQL plans the first five anew, then weighs the generic plan by
        # its estimates (with LIMIT $1 on a large table: dearer, never taken).
        assert plans.custom_plans >= 5


def _units(db: Database) -> float:
    value = db.cluster.instruments.registry.get_sample_value(
        "elearn_units_of_work_total", {"role": "reader", "kind": "single_shard"}
    )
    return value or 0.0


def test_a_lone_prepared_read_runs_on_the_pooled_connection_and_is_counted_as_a_unit(
    clean: Database,
) -> None:
    """``db.read_prepared``: a reader's answer, no unit of work, the same instruments."""
    user_id = _with_profile(clean)
    clean.users.get(user_id)  # the lag check is fresh: no query decides the replica
    engines = [node.engine for node in clean.cluster.engines.replicas("eu")]
    connections: list[object] = []

    def on_engine_connect(conn: object) -> None:
        connections.append(conn)

    units = _units(clean)
    rows = clean.read_prepared(Region.EUROPE, _prepared(), (user_id,))
    assert _units(clean) == units + 1
    assert len(rows) == 1 and UserView(*rows[0]) == _core_view(clean, user_id)
    assert all(engine.pool.checkedout() == 0 for engine in engines)
    for engine in engines:
        event.listen(engine, "engine_connect", on_engine_connect)
    try:
        # Observed: the same read goes through a unit of work and a Connection.
        assert clean.read_prepared("eu", _prepared(), (user_id,)) == rows
    finally:
        for engine in engines:
            event.remove(engine, "engine_connect", on_engine_connect)
    assert connections
    assert clean.read_prepared("eu", _prepared(), (uuid.uuid4(),)) == []


_END_OWN_SESSION = PreparedRead(
    "elearn_test_end_own_session",
    select(func.pg_terminate_backend(func.pg_backend_pid()).label("ended")),
    (),
)


def test_a_lone_prepared_read_replaces_a_lost_connection_once(clean: Database) -> None:
    """The fast path's lost connection is the read's one replacement: the next loss raises."""
    user_id = _with_profile(clean)
    clean.users.get(user_id)
    engines = [node.engine for node in clean.cluster.engines.replicas("eu")]
    made: list[object] = []

    def on_connect(dbapi_connection: object, record: object) -> None:
        made.append(dbapi_connection)

    for engine in engines:
        event.listen(engine, "connect", on_connect)
    try:
        # Every attempt ends its own session: the first on the pooled connection,
        # the second on the replacement; there is no third.
        with pytest.raises(ShardUnavailable):
            clean.read_prepared("eu", _END_OWN_SESSION, ())
    finally:
        for engine in engines:
            event.remove(engine, "connect", on_connect)
        forget_failures(clean, "eu")
    assert len(made) == 1
    assert clean.users.get(user_id).id == user_id
