"""The platform's regions and the helpers that map them to shards.

Regions are the unit of data residency and are fixed in code: an id carries its
region (see :mod:`elearn_data.ids`), so the set cannot change without re-keying
rows. Which shard serves a region is configuration
(:attr:`elearn_data.config.Settings.region_shards`): moving a region to another
shard is a settings change plus a data move, and keeps every id valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from elearn_data.errors import ConfigurationError, UnknownRegion


class Region(StrEnum):
    """A geographic region; the value is what the database stores."""

    NORTH_AMERICA = "north_america"
    SOUTH_AMERICA = "south_america"
    EUROPE = "europe"
    AFRICA = "africa"
    ASIA = "asia"
    OCEANIA = "oceania"


REGION_NAMES: tuple[str, ...] = tuple(r.value for r in Region)

DEFAULT_REGION_SHARDS: dict[Region, str] = {
    Region.NORTH_AMERICA: "na",
    Region.SOUTH_AMERICA: "na",
    Region.EUROPE: "eu",
    Region.AFRICA: "eu",
    Region.ASIA: "apac",
    Region.OCEANIA: "apac",
}

DEFAULT_SHARDS: tuple[str, ...] = ("na", "eu", "apac")


def parse_region(value: object) -> Region:
    """Return the Region named by ``value`` (a Region or its string value).

    Raises:
        UnknownRegion: the value names no region; the message lists the valid ones.
    """
    if isinstance(value, Region):
        return value
    if isinstance(value, str):
        try:
            return Region(value.strip().lower())
        except ValueError:
            pass
    raise UnknownRegion(value, REGION_NAMES)


def shard_for_region(region: object, region_shards: Mapping[Region, str]) -> str:
    """Return the shard that holds ``region``'s rows under the given map."""
    parsed = parse_region(region)
    try:
        return region_shards[parsed]
    except KeyError:
        raise ConfigurationError(f"region {parsed.value!r} has no shard in region_shards") from None


def regions_of_shard(shard: str, region_shards: Mapping[Region, str]) -> tuple[Region, ...]:
    """Return the regions a shard serves, in the enum's order."""
    return tuple(r for r in Region if region_shards.get(r) == shard)
