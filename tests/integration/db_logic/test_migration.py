"""Revisions 0002/0003 on a scratch database: downgrade removes every object they made."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import command

from elearn_data import migrations
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings

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
    """Every object revisions 0002 and 0003 say they create."""
    functions = _revision(VERSIONS / "0002_functions.py")
    triggers = _revision(VERSIONS / "0003_triggers.py")
    names = {f"{kind} {name}" for kind, name in functions.OBJECTS}
    names |= {f"function {name}" for name in triggers.FUNCTIONS}
    names |= {f"trigger {name}" for name, _ in triggers.TRIGGERS}
    names |= {f"trigger trg_{table}_updated_at" for table, _ in triggers.UPDATED_AT_TABLES}
    return names


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
    assert len([o for o in declared if o.startswith("function ")]) == 46
    assert len([o for o in declared if o.startswith("trigger ")]) == 22
    migrations.upgrade(scratch)
    at_head = _objects(cluster, scratch)
    assert all(objects == declared | SCHEMA_SEQUENCES for objects in at_head.values())
    # The models and every shard still agree (no table, column or index was added).
    command.check(migrations.alembic_config(scratch))

    migrations.downgrade(scratch, "0001")
    assert all(objects == SCHEMA_SEQUENCES for objects in _objects(cluster, scratch).values())
    migrations.downgrade(scratch, "base")
    assert all(objects == set() for objects in _objects(cluster, scratch).values())

    migrations.upgrade(scratch)
    assert _objects(cluster, scratch) == at_head
    assert not migrations.drift(migrations.status(scratch))
