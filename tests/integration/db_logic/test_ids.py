"""Id helpers in SQL: the same bit layout as elearn_data/ids.py, decodable in Python."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import EU, owner_connection, rows, scalar, sqlstate


def test_sql_made_ids_decode_in_python_with_their_owner_region(db: Database) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for region in Region:
        made = rows(db, EU, "SELECT elearn_new_id(:r) FROM generate_series(1, 50)", r=region.value)
        decoded = [ids.decode(row[0]) for row in made]
        assert {d.region for d in decoded} == {region}
        assert not any(d.reference for d in decoded)
        assert all(before <= d.created_at <= datetime.now(UTC) for d in decoded)
        assert ids.owner_region(made[0][0]) is region
        assert len({row[0] for row in made}) == 50


def test_sql_made_reference_ids_decode_with_their_home_region(db: Database) -> None:
    plain = ids.decode(scalar(db, EU, "SELECT elearn_new_reference_id()"))
    assert plain.reference and plain.region is None
    for region in Region:
        made = scalar(db, EU, "SELECT elearn_new_reference_id(:r)", r=region.value)
        decoded = ids.decode(made)
        assert decoded.reference and decoded.region is region
        assert ids.is_reference(made)


def test_region_names_are_trimmed_and_case_insensitive(db: Database) -> None:
    made = scalar(db, EU, "SELECT elearn_new_id(' Europe ')")
    assert ids.owner_region(made) is Region.EUROPE


def test_unknown_region_is_invalid_input_naming_the_region(db: Database) -> None:
    with sqlstate("EL400", InvalidInput, match="unknown region 'mars'"):
        scalar(db, EU, "SELECT elearn_new_id('mars')")
    with sqlstate("EL400", InvalidInput, match="unknown region 'atlantis'"):
        scalar(db, EU, "SELECT elearn_new_reference_id('atlantis')")
    with sqlstate("EL400", InvalidInput):
        scalar(db, EU, "SELECT elearn_new_id(NULL)")


def test_sql_and_python_ids_share_time_order(db: Database) -> None:
    # Python's generator may run a few milliseconds ahead of the wall clock after a
    # burst (it borrows the next millisecond when one is exhausted), so the ids are
    # taken tens of milliseconds apart.
    first = ids.new_id(Region.ASIA)
    later = scalar(db, EU, "SELECT elearn_new_id('asia') FROM pg_sleep(0.05)")
    time.sleep(0.05)
    last = ids.new_id(Region.ASIA)
    assert first.bytes < later.bytes < last.bytes


def test_id_code_reads_python_ids_and_rejects_foreign_uuids(db: Database) -> None:
    for region in Region:
        code = scalar(db, EU, "SELECT elearn_id_code(:id)", id=ids.new_id(region))
        assert code == ids.region_code(region)
        assert scalar(db, EU, "SELECT elearn_region_code(:r)", r=region.value) == code
        ref = scalar(db, EU, "SELECT elearn_id_code(:id)", id=ids.new_reference_id(region))
        assert ref == 0b1000 | ids.region_code(region)
    assert scalar(db, EU, "SELECT elearn_id_code(:id)", id=uuid.uuid4()) is None
    assert scalar(db, EU, "SELECT elearn_id_code(NULL)") is None


def test_foreign_uuid_does_not_decode_in_python(db: Database) -> None:
    # The SQL side must not hand out something Python refuses: a random v4 UUID is refused.
    try:
        ids.decode(scalar(db, EU, "SELECT gen_random_uuid()"))
    except NotFound:
        return
    raise AssertionError("a v4 uuid decoded as one of ours")


def test_elearn_shard_names_each_shard(db: Database) -> None:
    for shard in db.router.shards:
        assert scalar(db, shard, "SELECT elearn_shard()") == shard


def test_elearn_shard_without_a_recorded_name_is_not_found(db: Database) -> None:
    with owner_connection(db, EU) as conn:  # shard_meta is read-only for the application role
        savepoint = conn.begin_nested()
        conn.execute(text("DELETE FROM shard_meta WHERE key = 'shard'"))
        with sqlstate("EL404", NotFound, match="shard_meta"):
            conn.execute(text("SELECT elearn_shard()"))
        savepoint.rollback()
    assert scalar(db, EU, "SELECT elearn_shard()") == EU
