"""Seeding runs: determinism, reset, refusal, atomicity, and the deferred-index load."""

from __future__ import annotations

from typing import Any

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, InvalidState
from elearn_data.seeding import people, seed
from tests.integration.seeding.helpers import (
    ALL_TABLES,
    content_checksum,
    rows,
    scalar,
    table_checksums,
)

SCHEMA_SNAPSHOT = """
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1, 2
"""


def schema(cluster: LocalCluster) -> dict[str, list[tuple[Any, ...]]]:
    return {shard: rows(cluster, shard, SCHEMA_SNAPSHOT) for shard in cluster.state().shards}


def test_the_same_seed_twice_gives_identical_rows_ids_and_documents(
    clean: Database, cluster: LocalCluster
) -> None:
    seed(clean, "small", seed=7)
    first = table_checksums(cluster)
    first_content = content_checksum(clean.content_store)
    seed(clean, "small", seed=7, reset=True)
    assert table_checksums(cluster) == first
    assert content_checksum(clean.content_store) == first_content
    assert all(count > 0 for count, _ in first.values() if True)


def test_a_different_seed_gives_different_data(clean: Database, cluster: LocalCluster) -> None:
    seed(clean, "small", seed=1)
    first = table_checksums(cluster)
    first_content = content_checksum(clean.content_store)
    seed(clean, "small", seed=2, reset=True)
    second = table_checksums(cluster)
    for key in first:
        if key[1] != "course_categories":  # the category tree is fixed; its ids are not
            assert first[key][1] != second[key][1] or first[key][0] == 0, key
    assert content_checksum(clean.content_store)[2] != first_content[2]


def test_seeding_a_seeded_database_without_reset_is_refused_and_writes_nothing(
    clean: Database, cluster: LocalCluster
) -> None:
    seed(clean, "small", seed=3)
    before = table_checksums(cluster)
    with pytest.raises(InvalidState, match="--reset"):
        seed(clean, "small", seed=4)
    assert table_checksums(cluster) == before
    for shard in cluster.state().shards:
        assert scalar(cluster, shard, "SELECT count(*) FROM pg_prepared_xacts") == 0


def test_reset_replaces_the_data_and_the_content_store(
    clean: Database, cluster: LocalCluster
) -> None:
    user_id = clean.users.register(
        email="Someone.Else@Example.org",
        password="a-long-password",
        first_name="Some",
        last_name="One",
        region="europe",
    )
    assert clean.users.find_by_email("someone.else@example.org") is not None
    report = seed(clean, "small", seed=5, reset=True)
    assert clean.users.find_by_email("someone.else@example.org") is None
    assert report.table_totals()["users"] == 120
    content, preferences, _ = content_checksum(clean.content_store)
    assert (content, preferences) == (report.content_documents, report.preference_documents)
    assert preferences == 100  # the registered user's preferences are gone
    del user_id


def test_a_failed_run_leaves_every_shard_as_it_was(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(clean, "small", seed=11)
    before = table_checksums(cluster)
    before_schema = schema(cluster)
    original = people.user_batches

    def failing(world: Any) -> Any:
        yield from original(world)
        raise RuntimeError("generator failed half way")

    monkeypatch.setattr(people, "user_batches", failing)
    with pytest.raises(RuntimeError, match="half way"):
        seed(clean, "small", seed=12, reset=True, defer_indexes=True)
    assert table_checksums(cluster) == before
    assert schema(cluster) == before_schema
    for shard in cluster.state().shards:
        assert scalar(cluster, shard, "SELECT count(*) FROM pg_prepared_xacts") == 0


def test_the_deferred_index_load_restores_every_index_constraint_and_trigger(
    clean: Database, cluster: LocalCluster
) -> None:
    before = schema(cluster)
    seed(clean, "small", seed=13)
    plain = table_checksums(cluster)
    seed(clean, "small", seed=13, reset=True, defer_indexes=True)
    assert schema(cluster) == before
    assert table_checksums(cluster) == plain
    for shard in cluster.state().shards:
        assert scalar(
            cluster, shard, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
        ) == len([r for r in before[shard] if r[0] == "index"])


def test_seeding_through_settings_alone_works_and_the_report_says_where_content_went(
    clean: Database, cluster: LocalCluster
) -> None:
    report = seed(clean.settings, "small", seed=21, reset=True)
    assert report.table_totals()["enrollments"] == 200
    assert any("mongomock" in note for note in report.notes)
    assert all(table in ALL_TABLES for table in report.table_totals())


def test_a_content_limit_leaves_the_other_lessons_pending(
    clean: Database, cluster: LocalCluster
) -> None:
    report = seed(clean, "small", seed=22, content_limit=10)
    assert report.content_documents == 10
    shard = cluster.state().shards[0]
    statuses = dict(
        rows(
            cluster,
            shard,
            "SELECT content_status, count(*) FROM course_lessons "
            "WHERE lesson_type IN ('video', 'reading') GROUP BY 1",
        )
    )
    assert statuses["ready"] == 10
    assert statuses["pending"] > 0
    assert any("pending" in note for note in report.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": "huge"}, "unknown scale"),
        ({"seed": -1}, "non-negative"),
        ({"seed": "7"}, "non-negative"),
    ],
)
def test_bad_arguments_are_invalid_input_and_touch_nothing(
    clean: Database, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        seed(clean, **kwargs)
