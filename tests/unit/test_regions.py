from __future__ import annotations

import pytest

from elearn_data.errors import InvalidInput, UnknownRegion
from elearn_data.regions import (
    DEFAULT_REGION_SHARDS,
    Region,
    parse_region,
    regions_of_shard,
    shard_for_region,
)


def test_six_regions_map_to_three_shards_by_default() -> None:
    assert len(Region) == 6
    assert sorted(set(DEFAULT_REGION_SHARDS.values())) == ["apac", "eu", "na"]
    assert regions_of_shard("eu", DEFAULT_REGION_SHARDS) == (Region.EUROPE, Region.AFRICA)


@pytest.mark.parametrize("name", ["europe", " Europe ", Region.EUROPE])
def test_region_names_parse_case_insensitively(name: object) -> None:
    assert parse_region(name) is Region.EUROPE
    assert shard_for_region(name, DEFAULT_REGION_SHARDS) == "eu"


@pytest.mark.parametrize("bad", ["antarctica", "", None, 3, "europe'; DROP TABLE users; --"])
def test_unknown_region_lists_the_valid_ones(bad: object) -> None:
    with pytest.raises(UnknownRegion) as info:
        parse_region(bad)
    assert isinstance(info.value, InvalidInput)
    message = str(info.value)
    assert repr(bad) in message
    for region in Region:
        assert region.value in message
