"""Differential test: a global reader answers exactly like one database holding every shard.

Hypothesis generates query shapes (rows with ORDER BY/LIMIT/OFFSET/DISTINCT,
aggregates with GROUP BY/HAVING, co-located and catalog joins, and shapes that
have no exact merge) over generated data. Each query runs through
``db.reader()`` (ORM session and Core ``uow.execute``) and on one plain
PostgreSQL database that holds the union of the shards' rows. The results must
be equal; the shapes the platform cannot merge must raise ``CrossShardQuery``
(and only those).
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import (
    Engine,
    and_,
    asc,
    create_engine,
    desc,
    func,
    insert,
    nulls_first,
    nulls_last,
    or_,
    select,
)
from sqlalchemy.orm import aliased

from elearn_data import ids
from elearn_data.cluster.local import SUPERUSER, LocalCluster
from elearn_data.database import Database
from elearn_data.errors import CrossShardQuery
from elearn_data.models import Base, Course, CourseCategory, Enrollment, User
from elearn_data.regions import Region
from tests.integration.factories import add_user
from tests.support import truncate_all

NAMES = ["Ada", "Grace", "Alan", "Edsger", None]
STATUSES = ["active", "completed", "dropped"]


@dataclass
class World:
    db: Database
    union: Engine
    users: int
    enrollments: int


def _generate(db: Database, rng: random.Random) -> None:
    instructors = [add_user(db, region, role="instructor") for region in (Region.EUROPE,)]
    courses = [
        db.catalog.create_course(
            code=f"DIFF-{i}", title=f"Course {i}", instructor_id=instructors[0], price=Decimal(i)
        )
        for i in range(4)
    ]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    users: list[dict[str, Any]] = []
    for n in range(48):
        region = rng.choice(list(Region))
        user_id = ids.new_id(region)
        users.append(
            {
                "id": user_id,
                "email": f"diff{n}-{user_id.hex[:6]}@example.org",
                "password_hash": "x",
                "first_name": rng.choice([x for x in NAMES if x]),
                "last_name": rng.choice(["Lovelace", "Hopper", "Turing"]),
                "region": region.value,
                "role": "student",
                "status": rng.choice(["active", "inactive"]),
                "last_login": None if rng.random() < 0.3 else base + timedelta(hours=n % 7),
            }
        )
    enrollments: list[dict[str, Any]] = []
    for user in users:
        for course in rng.sample(courses, rng.randint(0, 3)):
            status = rng.choice(STATUSES)
            enrollments.append(
                {
                    "id": ids.new_id(Region(user["region"])),
                    "user_id": user["id"],
                    "course_id": course,
                    "status": status,
                    "progress_percent": Decimal(rng.randint(0, 10000)) / 100,
                    "completed_lessons": rng.randint(0, 5),
                    "completed_at": base + timedelta(days=rng.randint(0, 9))
                    if status == "completed" or rng.random() < 0.3
                    else None,
                    "dropped_at": base if status == "dropped" else None,
                }
            )
    # The INSERTs themselves go through the routing rule (rows split by shard).
    with db.writer() as uow:
        uow.execute(insert(User), users)
        uow.execute(insert(Enrollment), enrollments)


def _copy_into(db: Database, union: Engine) -> None:
    tables = [CourseCategory.__table__, Course.__table__, User.__table__, Enrollment.__table__]
    Base.metadata.create_all(union, tables=tables)
    with db.reader() as uow, union.begin() as conn:
        for table in tables:
            columns = [c for c in table.columns if c.computed is None]
            for shard in db.router.shards:
                rows = [dict(r._mapping) for r in uow.execute(select(*columns), shard=shard).all()]
                if rows:
                    conn.execute(insert(table), rows)
                if table.info["placement"] == "reference":
                    break


@pytest.fixture(scope="module")
def world(cluster: LocalCluster, db: Database) -> Iterator[World]:
    truncate_all(cluster)
    _generate(db, random.Random(20261201))
    state = cluster.state()
    node = state.primary_of(state.shards[0])
    dbname = f"elearn_union_{secrets.token_hex(4)}"
    janitor = DatabaseJanitor(
        user=SUPERUSER,
        password=state.superuser_password,
        host="127.0.0.1",
        port=node.port,
        dbname=dbname,
    )
    janitor.init()
    url = f"postgresql+psycopg2://{SUPERUSER}:{state.superuser_password}@127.0.0.1:{node.port}/{dbname}"
    union = create_engine(url)
    try:
        _copy_into(db, union)
        with union.connect() as conn:
            n_users = conn.execute(select(func.count()).select_from(User)).scalar_one()
            n_enrollments = conn.execute(select(func.count()).select_from(Enrollment)).scalar_one()
        yield World(db, union, n_users, n_enrollments)
    finally:
        union.dispose()
        janitor.drop()
        truncate_all(cluster)


# ------------------------------------------------------------------ shapes


@dataclass
class Shape:
    statement: Any
    ordered: bool  # the result order is defined (compare as lists)
    refused: bool  # no exact merge: CrossShardQuery expected

    sql: str = ""

    def __post_init__(self) -> None:
        # What a failing example prints (Hypothesis shows the fields).
        self.sql = str(self.statement.compile(compile_kwargs={"literal_binds": True}))


U, E = User, Enrollment

ROW_COLUMNS = {
    "users": [U.first_name, U.last_name, U.region, U.status, U.last_login],
    "enrollments": [E.status, E.progress_percent, E.completed_lessons, E.completed_at],
    "enrollments_users": [E.status, E.completed_lessons, U.first_name, U.region],
    "enrollments_courses": [E.status, E.progress_percent, Course.code, Course.price],
}
KEYS = {"users": U.id, "enrollments": E.id, "enrollments_users": E.id, "enrollments_courses": E.id}
NUMERIC = {
    "users": [],
    "enrollments": [E.progress_percent, E.completed_lessons],
    "enrollments_users": [E.progress_percent, E.completed_lessons],
    "enrollments_courses": [E.progress_percent, E.completed_lessons, Course.price],
}


def _from(stmt: Any, base: str) -> Any:
    if base == "users":
        return stmt.select_from(U)
    if base == "enrollments":
        return stmt.select_from(E)
    if base == "enrollments_users":
        return stmt.select_from(E).join(U, E.user_id == U.id)
    return stmt.select_from(E).join(Course, E.course_id == Course.id)


@st.composite
def filters(draw: st.DrawFn, base: str) -> Any:
    options: list[Any] = [None]
    if base != "users":
        options += [
            E.status == draw(st.sampled_from(STATUSES)),
            E.completed_lessons > draw(st.integers(0, 4)),
            or_(E.status == "dropped", E.progress_percent < Decimal("50")),
        ]
    if base in ("users", "enrollments_users"):
        regions = draw(st.lists(st.sampled_from([r.value for r in Region]), min_size=1))
        options += [
            U.first_name == draw(st.sampled_from([n for n in NAMES if n])),
            U.region.in_(regions),
            and_(U.status == "active", U.last_login.is_not(None)),
        ]
    return draw(st.sampled_from(options))


def _direction(draw: st.DrawFn, column: Any) -> Any:
    kind = draw(st.sampled_from(["asc", "desc", "asc_nf", "desc_nl"]))
    if kind == "asc":
        return asc(column)
    if kind == "desc":
        return desc(column)
    if kind == "asc_nf":
        return nulls_first(asc(column))
    return nulls_last(desc(column))


@st.composite
def row_shapes(draw: st.DrawFn) -> Shape:
    base = draw(st.sampled_from(list(ROW_COLUMNS)))
    columns = draw(
        st.lists(st.sampled_from(ROW_COLUMNS[base]), min_size=1, max_size=3, unique=True)
    )
    distinct = draw(st.booleans())
    stmt = _from(select(*columns), base)
    where = draw(filters(base))
    if where is not None:
        stmt = stmt.where(where)
    ordered = draw(st.booleans())
    if distinct:
        stmt = stmt.distinct()
        if ordered:
            stmt = stmt.order_by(*(_direction(draw, c) for c in columns))
    elif ordered:
        keys = draw(st.lists(st.sampled_from(ROW_COLUMNS[base]), max_size=2, unique=True))
        stmt = stmt.order_by(*(_direction(draw, c) for c in keys), KEYS[base])
    if ordered and draw(st.booleans()):
        stmt = stmt.limit(draw(st.integers(0, 25)))
    if ordered and draw(st.booleans()):
        stmt = stmt.offset(draw(st.integers(0, 30)))
    return Shape(stmt, ordered, refused=False)


def _aggregate(draw: st.DrawFn, base: str) -> Any:
    name = draw(st.sampled_from(["count_star", "count", "sum", "min", "max", "avg"]))
    if name == "count_star":
        return func.count()
    numeric = NUMERIC[base]
    if not numeric:
        column = draw(st.sampled_from([U.last_login, U.first_name]))
        name = draw(st.sampled_from(["count", "min", "max"]))
    else:
        column = draw(st.sampled_from(numeric))
    return getattr(func, name)(column)


@st.composite
def aggregate_shapes(draw: st.DrawFn) -> Shape:
    base = draw(st.sampled_from(list(ROW_COLUMNS)))
    groups = draw(st.lists(st.sampled_from(ROW_COLUMNS[base][:3]), max_size=2, unique=True))
    aggregates = [_aggregate(draw, base).label(f"a{i}") for i in range(draw(st.integers(1, 3)))]
    stmt = _from(select(*groups, *aggregates), base)
    where = draw(filters(base))
    if where is not None:
        stmt = stmt.where(where)
    if groups:
        stmt = stmt.group_by(*groups)
    if draw(st.booleans()):
        stmt = stmt.having(func.count() > draw(st.integers(0, 6)))
    ordered = bool(groups) and draw(st.booleans())
    if ordered:
        lead = draw(st.sampled_from([None, *range(len(aggregates))]))
        terms = [] if lead is None else [_direction(draw, aggregates[lead])]
        stmt = stmt.order_by(*terms, *(_direction(draw, g) for g in groups))
        if draw(st.booleans()):
            stmt = stmt.limit(draw(st.integers(0, 6))).offset(draw(st.integers(0, 3)))
    return Shape(stmt, ordered or not groups, refused=False)


@st.composite
def refused_shapes(draw: st.DrawFn) -> Shape:
    other = aliased(Enrollment)
    candidates = [
        # Two learners' rows joined through the catalog.
        select(E.id, other.id).join(other, E.course_id == other.course_id),
        # Window function over learner rows.
        select(E.id, func.row_number().over(order_by=E.progress_percent)),
        # Aggregates without an exact merge.
        select(func.count(E.user_id.distinct())),
        select(U.region, func.string_agg(U.first_name, ",")).group_by(U.region),
        # A subquery of learner rows.
        select(U.id).where(U.id.in_(select(E.user_id).where(E.status == "dropped"))),
        select(U.id).where(U.id.in_(select(E.user_id))).union(select(E.user_id)),
        select(U.first_name).where(U.status == "active").distinct().union_all(select(E.status)),
    ]
    return Shape(draw(st.sampled_from(candidates)), ordered=False, refused=True)


def _normalize(rows: list[Any], ordered: bool) -> list[tuple[Any, ...]]:
    plain = [tuple(r) for r in rows]
    if ordered:
        return plain
    return sorted(plain, key=lambda r: tuple((v is None, str(type(v)), str(v)) for v in r))


def _run(world: World, shape: Shape, via_orm: bool) -> list[Any]:
    with world.db.reader() as uow:
        if via_orm:
            return list(uow.session.execute(shape.statement).all())
        return list(uow.execute(shape.statement).all())


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=st.one_of(row_shapes(), aggregate_shapes(), refused_shapes()),
    via_orm=st.booleans(),
)
def test_a_global_reader_answers_like_one_database_or_refuses(
    world: World, shape: Shape, via_orm: bool
) -> None:
    if shape.refused:
        with pytest.raises(CrossShardQuery, match=r"db\.analytics\.sql"):
            _run(world, shape, via_orm)
        return
    got = _run(world, shape, via_orm)
    with world.union.connect() as conn:
        expected = list(conn.execute(shape.statement).all())
    assert _normalize(got, shape.ordered) == _normalize(expected, shape.ordered)


def test_the_data_spans_every_shard(world: World) -> None:
    with world.db.reader() as uow:
        per_shard = {
            shard: uow.execute(select(func.count()).select_from(User), shard=shard).scalar_one()
            for shard in world.db.router.shards
        }
        assert all(count > 0 for count in per_shard.values())
        assert uow.session.scalar(select(func.count()).select_from(User)) == world.users
        assert uow.execute(select(func.count()).select_from(Enrollment)).scalar() == (
            world.enrollments
        )


def test_orm_entities_merge_in_order_with_limit_and_offset(world: World) -> None:
    stmt = select(User).order_by(User.last_name.desc(), User.id).limit(7).offset(3)
    with world.db.reader() as uow:
        got = [(u.id, u.last_name) for u in uow.session.scalars(stmt)]
    with world.union.connect() as conn:
        expected = [(r.id, r.last_name) for r in conn.execute(stmt)]
    assert got == expected and len(got) == 7


def test_orm_entities_joined_to_their_learner_merge_exactly(world: World) -> None:
    stmt = (
        select(Enrollment, User.first_name)
        .join(User, Enrollment.user_id == User.id)
        .where(Enrollment.completed_lessons >= 2)
        .order_by(Enrollment.progress_percent.desc(), Enrollment.id)
        .limit(10)
    )
    with world.db.reader() as uow:
        got = [(e.id, e.progress_percent, name) for e, name in uow.session.execute(stmt)]
    with world.union.connect() as conn:
        expected = [
            (r.id, r.progress_percent, r.first_name)
            for r in conn.execute(
                select(Enrollment.id, Enrollment.progress_percent, User.first_name)
                .join(User, Enrollment.user_id == User.id)
                .where(Enrollment.completed_lessons >= 2)
                .order_by(Enrollment.progress_percent.desc(), Enrollment.id)
                .limit(10)
            )
        ]
    assert got == expected


def test_avg_is_a_global_sum_over_a_global_count_digit_for_digit(world: World) -> None:
    stmt = select(func.avg(Enrollment.progress_percent), func.avg(Enrollment.completed_lessons))
    with world.db.reader() as uow:
        got = uow.execute(stmt).one()
    with world.union.connect() as conn:
        expected = conn.execute(stmt).one()
    assert tuple(got) == tuple(expected)
    assert [str(v) for v in got] == [str(v) for v in expected]


def test_uuid_keys_are_not_mistaken_for_a_shard(world: World) -> None:
    stranger = uuid.uuid4()
    with world.db.reader() as uow:
        assert uow.execute(select(User.id).where(User.id == stranger)).all() == []
        assert uow.session.scalar(select(func.count()).where(User.id == stranger)) == 0
