"""Revisions 0002, 0003, 0005, 0008, 0009, 0011 and 0012 on a scratch database: downgrade
removes their objects."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command

from elearn_data import ids, migrations
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.regions import Region

VERSIONS = migrations.SCRIPT_LOCATION / "versions"

OBJECTS = (
    "SELECT 'function ' || p.proname FROM pg_proc p"
    " WHERE p.pronamespace = 'public'::regnamespace"
    " UNION ALL SELECT 'trigger ' || t.tgname FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid"
    " WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"
    " UNION ALL SELECT 'sequence ' || c.relname FROM pg_class c"
    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'"
)
# The identity column of content_outbox (revision 0001) owns this one.
SCHEMA_SEQUENCES = {"sequence content_outbox_id_seq"}


def _revision(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rev_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared() -> set[str]:
    """Every object revisions 0002, 0003, 0005, 0008, 0009, 0011 and 0012 say they create."""
    functions = _revision(VERSIONS / "0002_functions.py")
    triggers = _revision(VERSIONS / "0003_triggers.py")
    assessments = _revision(VERSIONS / "0008_assessments.py")
    names = {f"{kind} {name}" for kind, name in functions.OBJECTS}
    for revision in (triggers, assessments, _GAMIFICATION):
        names |= {f"function {name}" for name in revision.FUNCTIONS}
        names |= {f"trigger {name}" for name, _ in revision.TRIGGERS}
        for table, _ in getattr(revision, "UPDATED_AT_TABLES", ()):
            names.add(f"trigger trg_{table}_updated_at")
    security = _revision(VERSIONS / "0005_security.py")
    names |= {f"function {name}" for name, _ in security.FUNCTIONS}
    names |= {f"function {name}" for name in _CODES.FUNCTIONS}
    names |= {f"function {name}" for name, _ in _LEADERS.FUNCTIONS}
    names.discard(f"function {_LEADERS.REPLACED[0]}")
    return names


_SECURITY = _revision(VERSIONS / "0005_security.py")
_CODES = _revision(VERSIONS / "0011_id_code_table.py")
_GAMIFICATION = _revision(VERSIONS / "0009_gamification.py")
_LEADERS = _revision(VERSIONS / "0012_leaderboard_sql_functions.py")


def _objects(cluster: LocalCluster, settings: Settings) -> dict[str, set[str]]:
    dbname = (settings.shards["eu"].primary or "").rsplit("/", 1)[1].split("?")[0]
    state = cluster.state()
    found = {}
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname=dbname)
        with conn.cursor() as cur:
            cur.execute(OBJECTS)
            found[shard] = {row[0] for row in cur.fetchall()}
        conn.close()
    return found


def test_downgrade_leaves_no_function_trigger_or_sequence_behind(
    scratch: Settings, cluster: LocalCluster
) -> None:
    declared = _declared()
    # 0002: 38 functions; 0003: 8 + 14 triggers; 0005: 5 functions; 0008: 15 functions,
    # 4 + 4 triggers; 0009: 11 functions, 5 + 2 triggers; 0011: 1 function; 0012: 2
    # functions for 0009's get_points_leaders.
    assert len([o for o in declared if o.startswith("function ")]) == 61 + 5 + 11 + 1 + 1
    assert len([o for o in declared if o.startswith("trigger ")]) == 30 + 5 + 2
    migrations.upgrade(scratch)
    at_head = _objects(cluster, scratch)
    assert all(objects == declared | SCHEMA_SEQUENCES for objects in at_head.values())
    # The models and every shard still agree (no table, column or index was added).
    command.check(migrations.alembic_config(scratch))

    # 0005 and what follows undone: their functions and triggers are gone and the money
    # functions run as the caller again.
    migrations.downgrade(scratch, "0003")
    assessments = _revision(VERSIONS / "0008_assessments.py")
    without_0005 = declared - {f"function {n}" for n, _ in _SECURITY.FUNCTIONS}
    without_0005 -= {f"function {name}" for name in assessments.FUNCTIONS}
    without_0005 -= {f"trigger {name}" for name, _ in assessments.TRIGGERS}
    without_0005 -= {f"trigger trg_{t}_updated_at" for t, _ in assessments.UPDATED_AT_TABLES}
    without_0005 -= {f"function {name}" for name in _GAMIFICATION.FUNCTIONS}
    without_0005 -= {f"trigger {name}" for name, _ in _GAMIFICATION.TRIGGERS}
    without_0005 -= {f"trigger trg_{t}_updated_at" for t, _ in _GAMIFICATION.UPDATED_AT_TABLES}
    without_0005 -= {f"function {name}" for name in _CODES.FUNCTIONS}
    without_0005 -= {f"function {name}" for name, _ in _LEADERS.FUNCTIONS}
    assert all(
        objects == without_0005 | SCHEMA_SEQUENCES
        for objects in _objects(cluster, scratch).values()
    )
    migrations.downgrade(scratch, "0001")
    assert all(objects == SCHEMA_SEQUENCES for objects in _objects(cluster, scratch).values())
    migrations.downgrade(scratch, "base")
    assert all(objects == set() for objects in _objects(cluster, scratch).values())

    migrations.upgrade(scratch)
    assert _objects(cluster, scratch) == at_head
    assert not migrations.drift(migrations.status(scratch))


def _on_eu(cluster: LocalCluster, settings: Settings, statement: str) -> object:
    """The first column of the first row of ``statement`` on eu's scratch database."""
    dbname = (settings.shards["eu"].primary or "").rsplit("/", 1)[1].split("?")[0]
    state = cluster.state()
    conn = cluster.admin_connect(state.primary_of("eu"), dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            row = cur.fetchone()
    finally:
        conn.close()
    return None if row is None else row[0]


def _progress_body(cluster: LocalCluster, settings: Settings) -> str:
    body = _on_eu(
        cluster,
        settings,
        "SELECT prosrc FROM pg_proc WHERE proname = 'elearn_enrollment_progress_sync'",
    )
    assert body is not None
    return str(body)


def test_downgrading_0008_restores_the_lessons_only_progress_trigger(
    scratch: Settings, cluster: LocalCluster
) -> None:
    migrations.upgrade(scratch)
    assert "elearn_assessments_passed" in _progress_body(cluster, scratch)
    migrations.downgrade(scratch, "0003")
    assert "elearn_assessments_passed" not in _progress_body(cluster, scratch)
    left = {o for objects in _objects(cluster, scratch).values() for o in objects}
    assert not {o for o in left if "assess" in o or "attempt" in o}
    migrations.upgrade(scratch)
    assert "elearn_assessments_passed" in _progress_body(cluster, scratch)


def test_downgrading_0011_restores_0002s_region_codes_and_ids_keep_their_codes(
    scratch: Settings, cluster: LocalCluster
) -> None:
    body = "SELECT prosrc FROM pg_proc WHERE proname = 'elearn_region_code'"
    made = "SELECT elearn_new_id('africa')::text"
    migrations.upgrade(scratch)
    assert "elearn_region_codes()" in str(_on_eu(cluster, scratch, body))
    assert ids.owner_region(str(_on_eu(cluster, scratch, made))) is Region.AFRICA
    migrations.downgrade(scratch, "0008")
    assert "WHEN 'africa' THEN 4" in str(_on_eu(cluster, scratch, body))
    assert _on_eu(cluster, scratch, "SELECT to_regproc('elearn_region_codes')") is None
    assert ids.owner_region(str(_on_eu(cluster, scratch, made))) is Region.AFRICA
    migrations.upgrade(scratch)
    assert "elearn_region_codes()" in str(_on_eu(cluster, scratch, body))


def test_0012s_leaderboard_functions_are_inlined_and_downgrading_restores_0009s(
    scratch: Settings, cluster: LocalCluster
) -> None:
    def plan(statement: str) -> str:
        dbname = (scratch.shards["eu"].primary or "").rsplit("/", 1)[1].split("?")[0]
        state = cluster.state()
        conn = cluster.admin_connect(state.primary_of("eu"), dbname=dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(f"EXPLAIN {statement}")
                return "\n".join(row[0] for row in cur.fetchall())
        finally:
            conn.close()

    exists = "SELECT to_regproc('{}') IS NOT NULL"
    migrations.upgrade(scratch)
    # Inlined: the plan is the SELECT's own (no Function Scan around a tuplestore).
    for call in (
        "get_points_leaders_all(NULL, 10)",
        "get_points_leaders_since(now() - interval '7 days', NULL, 'europe', 10)",
    ):
        assert "Function Scan" not in plan(f"SELECT * FROM {call}"), call
    assert _on_eu(cluster, scratch, exists.format("get_points_leaders")) is False
    migrations.downgrade(scratch, "0011")
    assert _on_eu(cluster, scratch, exists.format("get_points_leaders")) is True
    for name, _ in _LEADERS.FUNCTIONS:
        assert _on_eu(cluster, scratch, exists.format(name)) is False
    migrations.upgrade(scratch)
    assert _on_eu(cluster, scratch, exists.format("get_points_leaders_all")) is True
