from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elearn_data import ids
from elearn_data.errors import InvalidInput
from elearn_data.regions import Region

regions = st.sampled_from(list(Region))
# decode() turns the milliseconds into a datetime, which ends in the year 9999.
ms_values = st.integers(min_value=0, max_value=253_402_300_799_999)
counters = st.integers(min_value=0, max_value=0xFFF)
rand48s = st.integers(min_value=0, max_value=2**48 - 1)


@given(regions, ms_values, counters, rand48s)
def test_made_ids_decode_to_their_region_and_time(
    region: Region, ms: int, counter: int, rand48: int
) -> None:
    value = ids.make_id(region, ms=ms, counter=counter, rand48=rand48)
    decoded = ids.decode(value)
    assert decoded.region is region
    assert not decoded.reference
    assert int(decoded.created_at.timestamp() * 1000 + 0.5) == ms
    assert value.int & (2**48 - 1) == rand48
    assert (value.int >> 64) & 0xFFF == counter


@given(st.one_of(st.none(), regions), ms_values, counters, rand48s)
def test_made_reference_ids_carry_the_marker_and_their_home(
    home: Region | None, ms: int, counter: int, rand48: int
) -> None:
    value = ids.make_reference_id(home, ms=ms, counter=counter, rand48=rand48)
    decoded = ids.decode(value)
    assert decoded.reference
    assert decoded.region is home


def test_the_same_parts_make_the_same_id() -> None:
    a = ids.make_id(Region.AFRICA, ms=1_700_000_000_000, counter=7, rand48=12345)
    b = ids.make_id(Region.AFRICA, ms=1_700_000_000_000, counter=7, rand48=12345)
    assert a == b


def test_made_ids_share_the_layout_of_new_ids() -> None:
    fresh = ids.new_id(Region.OCEANIA)
    bits = fresh.int
    remade = ids.make_id(
        Region.OCEANIA, ms=bits >> 80, counter=(bits >> 64) & 0xFFF, rand48=bits & (2**48 - 1)
    )
    assert remade == fresh


def test_made_ids_sort_by_their_milliseconds() -> None:
    early = ids.make_id(Region.ASIA, ms=1_000, counter=4095, rand48=2**48 - 1)
    late = ids.make_id(Region.ASIA, ms=1_001, counter=0, rand48=0)
    assert early < late


@pytest.mark.parametrize(
    ("ms", "counter", "rand48"),
    [(-1, 0, 0), (2**48, 0, 0), (0, -1, 0), (0, 0x1000, 0), (0, 0, -1), (0, 0, 2**48)],
)
def test_parts_that_do_not_fit_their_field_are_invalid_input(
    ms: int, counter: int, rand48: int
) -> None:
    with pytest.raises(InvalidInput):
        ids.make_id(Region.EUROPE, ms=ms, counter=counter, rand48=rand48)


def test_id_code_matches_the_codes_inside_made_ids() -> None:
    owned = ids.make_id(Region.EUROPE, ms=1, counter=0, rand48=0)
    ref = ids.make_reference_id(Region.ASIA, ms=1, counter=0, rand48=0)
    assert (owned.int >> 58) & 0xF == ids.id_code(Region.EUROPE)
    assert (ref.int >> 58) & 0xF == ids.id_code(Region.ASIA, reference=True)
    assert ids.id_code(None, reference=True) == 0b1000
    assert ids.region_code(Region.EUROPE) == ids.id_code(Region.EUROPE)
    with pytest.raises(InvalidInput):
        ids.id_code(None)


@given(st.lists(st.tuples(regions, ms_values, counters, rand48s), min_size=1, max_size=20))
def test_the_seeders_vectorised_ids_equal_make_id(
    parts: list[tuple[Region, int, int, int]],
) -> None:
    import numpy as np  # noqa: PLC0415 - numpy is only needed by this test

    from elearn_data.seeding import columns  # noqa: PLC0415

    codes = np.array([ids.id_code(r) for r, _, _, _ in parts], dtype=np.uint64)
    hi, lo = columns.compose_ids(
        codes,
        np.array([m for _, m, _, _ in parts], dtype=np.int64),
        np.array([c for _, _, c, _ in parts], dtype=np.uint64),
        np.array([x for _, _, _, x in parts], dtype=np.uint64),
    )
    expected = [ids.make_id(r, ms=m, counter=c, rand48=x) for r, m, c, x in parts]
    assert columns.uuids(hi, lo) == expected
    assert list(columns.hex_ids(hi, lo)) == [e.hex for e in expected]
