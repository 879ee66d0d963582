"""The id codec exists once: Python, the numpy bulk path and SQL agree on every region and kind.

The code table is ``elearn_data.ids.REGION_CODES`` (with ``REFERENCE_FLAG`` and
``ID_TAG``); ``elearn_data.seeding.columns`` composes ids from the same
constants and revision 0011 writes the region codes into the database's
``elearn_region_codes()``, which ``elearn_region_code()`` reads. Each check runs
the SQL functions on every real shard.
"""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidInput
from elearn_data.regions import REGION_NAMES, Region
from elearn_data.seeding import columns
from tests.integration.db_logic.helpers import scalar, sqlstate

MS, COUNTER, RAND48 = 1_767_225_600_000, 0x5A5, 0x1234_5678_9ABC

# Every kind of region field: owned by each region, a reference id homed in each
# region, and a reference id with no home.
KINDS: list[tuple[Region | None, bool]] = [
    *((region, False) for region in Region),
    *((region, True) for region in Region),
    (None, True),
]


def _field(value: uuid.UUID) -> tuple[int, int]:
    """The (region code, tag) an id carries, read straight from its bits."""
    return (value.int >> 58) & 0xF, (value.int >> 48) & 0x3FF


def _python_id(region: Region | None, reference: bool) -> uuid.UUID:
    if reference:
        return ids.make_reference_id(region, ms=MS, counter=COUNTER, rand48=RAND48)
    assert region is not None
    return ids.make_id(region, ms=MS, counter=COUNTER, rand48=RAND48)


def _numpy_id(region: Region | None, reference: bool) -> uuid.UUID:
    hi, lo = columns.compose_ids(
        ids.id_code(region, reference=reference),
        np.array([MS], dtype=np.int64),
        np.array([COUNTER], dtype=np.uint64),
        np.array([RAND48], dtype=np.uint64),
    )
    return columns.uuid_of(hi[0], lo[0])


def _sql_id(db: Database, shard: str, region: Region | None, reference: bool) -> uuid.UUID:
    if reference:
        made = scalar(db, shard, "SELECT elearn_new_reference_id(:r)", r=region and region.value)
    else:
        assert region is not None
        made = scalar(db, shard, "SELECT elearn_new_id(:r)", r=region.value)
    return ids.as_uuid(made)


def test_the_code_table_names_every_region_once_within_the_field() -> None:
    assert set(ids.REGION_CODES) == set(Region)
    codes = list(ids.REGION_CODES.values())
    assert len(set(codes)) == len(codes)
    # A reference id's home lives in the low three bits beside REFERENCE_FLAG.
    assert all(0 < code < ids.REFERENCE_FLAG for code in codes)
    assert ids.ID_TAG < 1 << 10


def test_every_shard_holds_the_python_code_table(db: Database) -> None:
    expected = {region.value: code for region, code in ids.REGION_CODES.items()}
    for shard in db.router.shards:
        assert scalar(db, shard, "SELECT elearn_region_codes()") == expected
        for region in Region:
            assert (
                scalar(db, shard, "SELECT elearn_region_code(:r)", r=region.value)
                == ids.region_code(region)
                == ids.REGION_CODES[region]
            )


@pytest.mark.parametrize(("region", "reference"), KINDS)
def test_python_numpy_and_sql_agree_on_the_region_field(
    db: Database, region: Region | None, reference: bool
) -> None:
    code = ids.id_code(region, reference=reference)
    python, numpy_made = _python_id(region, reference), _numpy_id(region, reference)
    # Python and numpy compose the same id from the same parts.
    assert numpy_made == python
    assert _field(python) == (code, ids.ID_TAG)
    decoded = ids.decode(python)
    assert (decoded.region, decoded.reference) == (region, reference)
    for shard in db.router.shards:
        # SQL reads the region field of the ids Python and numpy made ...
        assert scalar(db, shard, "SELECT elearn_id_code(:id)", id=python) == code
        assert scalar(db, shard, "SELECT elearn_id_code(:id)", id=numpy_made) == code
        # ... and writes the same field, with the same tag, into the ids it makes.
        made = _sql_id(db, shard, region, reference)
        assert _field(made) == (code, ids.ID_TAG)
        assert scalar(db, shard, "SELECT elearn_id_code(:id)", id=made) == code
        decoded = ids.decode(made)
        assert (decoded.region, decoded.reference) == (region, reference)
        built = ids.as_uuid(scalar(db, shard, "SELECT elearn_build_id(:c)", c=code))
        assert _field(built) == (code, ids.ID_TAG)


def test_the_seeding_path_makes_ids_of_every_region(db: Database) -> None:
    rng = np.random.default_rng(7)
    ms = np.full(4, MS, dtype=np.int64)
    for region in Region:
        made = columns.uuids(*columns.owned_ids(region, ms, rng))
        assert {ids.owner_region(value) for value in made} == {region}
        for shard in db.router.shards:
            assert {
                scalar(db, shard, "SELECT elearn_id_code(:id)", id=value) for value in made
            } == {ids.region_code(region)}


def test_an_unknown_region_lists_the_regions_in_code_order(db: Database) -> None:
    in_code_order = sorted(Region, key=lambda region: ids.REGION_CODES[region])
    assert [region.value for region in in_code_order] == list(REGION_NAMES)
    # Revision 0002's message, word for word: the regions in code order.
    message = re.escape("unknown region 'mars'; valid regions: " + ", ".join(REGION_NAMES))
    for shard in db.router.shards:
        with sqlstate("EL400", InvalidInput, match=message):
            scalar(db, shard, "SELECT elearn_region_code('mars')")
