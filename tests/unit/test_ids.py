from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elearn_data import ids
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.regions import Region

regions = st.sampled_from(list(Region))


@given(regions)
def test_owned_ids_round_trip_their_region(region: Region) -> None:
    value = ids.new_id(region)
    decoded = ids.decode(value)
    assert decoded.region is region
    assert not decoded.reference
    assert ids.owner_region(value) is region
    assert value.version == 8
    assert value.variant == uuid.RFC_4122


@given(st.one_of(st.none(), regions))
def test_reference_ids_carry_the_marker_and_their_home(home: Region | None) -> None:
    value = ids.new_reference_id(home)
    decoded = ids.decode(value)
    assert decoded.reference
    assert decoded.region is home
    with pytest.raises(NotFound, match="catalog id"):
        ids.owner_region(value)


@given(regions, regions)
def test_ids_sort_by_creation_time(first: Region, second: Region) -> None:
    a = ids.new_id(first)
    b = ids.new_id(second)
    assert a < b
    assert ids.decode(a).created_at <= ids.decode(b).created_at


def test_ids_are_unique_and_monotonic_within_a_millisecond() -> None:
    batch = [ids.new_id(Region.ASIA) for _ in range(20_000)]
    assert len(set(batch)) == len(batch)
    assert batch == sorted(batch)


def test_creation_time_is_the_clock_in_milliseconds() -> None:
    before = time.time()
    created = ids.decode(ids.new_id(Region.EUROPE)).created_at.timestamp()
    assert before - 0.002 <= created <= time.time() + 0.002


@given(st.uuids(version=4))
def test_random_uuid4_is_a_foreign_id(value: uuid.UUID) -> None:
    with pytest.raises(ids.ForeignId, match=str(value)):
        ids.decode(value)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_arbitrary_uuids_decode_or_raise_not_found(bits: int) -> None:
    value = uuid.UUID(int=bits)
    try:
        decoded = ids.decode(value)
    except NotFound:
        return
    assert value.version == 8
    assert decoded.reference or decoded.region is not None


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, None, b"\x00" * 16, "'; DROP TABLE users; --"])
def test_values_that_are_not_uuids_are_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        ids.decode(bad)


def test_string_form_is_accepted() -> None:
    value = ids.new_id(Region.AFRICA)
    assert ids.owner_region(str(value)) is Region.AFRICA


def test_a_tagged_id_from_the_far_future_is_foreign_not_a_crash() -> None:
    far = (0xFFFF_FFFF_FFFF << 80) | (0x8 << 76) | (0b10 << 62) | (1 << 58) | (0x2E1 << 48)
    with pytest.raises(ids.ForeignId, match="out of range"):
        ids.decode(uuid.UUID(int=far))


def test_the_last_millisecond_datetime_holds_is_ours_and_the_next_is_foreign() -> None:
    last = ids.make_id(Region.AFRICA, ms=253_402_300_799_999, counter=0, rand48=0)
    assert ids.decode(last).created_at.year == 9999
    assert ids.owner_region(last) is Region.AFRICA
    past = ids.make_id(Region.AFRICA, ms=253_402_300_800_000, counter=0, rand48=0)
    for read in (ids.decode, ids.owner_region):
        with pytest.raises(ids.ForeignId, match="out of range"):
            read(past)
