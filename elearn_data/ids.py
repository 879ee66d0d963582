"""Region-carrying, time-ordered 128-bit ids (RFC 9562 UUIDv8 layout).

Every primary key resolves to exactly one shard without a query: the id says
which region owns the row, and the settings say which shard serves the region.
Ids carry the *region*, not the shard, so moving a region to another shard keeps
every id valid.

Bit layout (most significant first)::

    48  unix_ts_ms      milliseconds since the epoch -> ids sort by creation time
     4  version = 8     RFC 9562 "custom" UUID
    12  counter         monotonic within one millisecond in this process
     2  variant = 0b10  RFC 9562 variant
     4  region code     1..6 = owning region; 0b1xxx = reference (catalog) row,
                        whose low three bits name its home region (0 = none)
    10  tag = 0x2E1     marks ids this platform issued
    48  random

A UUID without version 8, the RFC variant and the tag -- a random ``uuid4`` for
example -- was never issued here: decoding it raises :class:`ForeignId`, a
:class:`~elearn_data.errors.NotFound`, which is what the API contract asks of an
id that names no row.

The code table -- :data:`REGION_CODES`, :data:`REFERENCE_FLAG`, :data:`ID_TAG` and
the two 64-bit halves of the layout (:data:`HIGH_FIXED_BITS`, :data:`LOW_FIXED_BITS`,
:data:`CODE_SHIFT`) -- is written out here once. The bulk path composes ids with
numpy from the same constants (:mod:`elearn_data.seeding.columns`), and the
database's ``elearn_region_code()`` reads the same region codes, which revision
0011 writes into ``elearn_region_codes()`` from this table;
``tests/integration/db_logic/test_id_codec.py`` checks that the three agree on
every region and kind of id.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from elearn_data import errors
from elearn_data.errors import InvalidInput
from elearn_data.regions import Region

ID_TAG: Final = 0x2E1
"""The 10-bit tag that marks ids this platform issued."""

REFERENCE_FLAG: Final = 0b1000
"""Set in the 4-bit region field of a reference (catalog) id; the low three bits name its home."""

# Written out, never derived from the enum's declaration order: every stored id
# carries these numbers, so a region's code can never change (a new region takes
# a free code, 7 is the last one a reference id's home can name).
REGION_CODES: Final[Mapping[Region, int]] = MappingProxyType(
    {
        Region.NORTH_AMERICA: 1,
        Region.SOUTH_AMERICA: 2,
        Region.EUROPE: 3,
        Region.AFRICA: 4,
        Region.ASIA: 5,
        Region.OCEANIA: 6,
    }
)
"""Region -> the 4-bit code of an id it owns (and, with :data:`REFERENCE_FLAG`, of a home)."""

# The layout as two 64-bit halves (what numpy composes in the bulk path):
#   high = unix_ms << 16 | version 8 << 12 | counter
#   low  = variant 0b10 << 62 | region code << 58 | tag << 48 | 48 random bits
HIGH_FIXED_BITS: Final = 0x8 << 12
LOW_FIXED_BITS: Final = (0b10 << 62) | (ID_TAG << 48)
CODE_SHIFT: Final = 58

_CODE_REGIONS: dict[int, Region] = {code: region for region, code in REGION_CODES.items()}

_MAX_COUNTER = 0xFFF

# Defined in elearn_data.errors with every other error; ids.ForeignId keeps working.
ForeignId = errors.ForeignId


@dataclass(frozen=True, slots=True)
class DecodedId:
    """What an id says about its row."""

    created_at: datetime
    reference: bool
    region: Region | None  # owning region, or a reference row's home region (if any)


class _Clock:
    """Millisecond clock with a per-millisecond counter (RFC 9562, method 1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next(self) -> tuple[int, int]:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                # A random start keeps ids of two processes in one millisecond
                # apart, while leaving half the range for increments.
                self._counter = secrets.randbits(11)
            else:
                self._counter += 1
                if self._counter > _MAX_COUNTER:
                    # More than ~2000 ids in a millisecond: borrow the next one.
                    self._last_ms += 1
                    self._counter = 0
            return self._last_ms, self._counter


_clock = _Clock()


def _join(code: int, ms: int, counter: int, rand48: int) -> uuid.UUID:
    high = (ms << 16) | HIGH_FIXED_BITS | counter
    low = LOW_FIXED_BITS | (code << CODE_SHIFT) | rand48
    return uuid.UUID(int=(high << 64) | low)


def _build(code: int) -> uuid.UUID:
    ms, counter = _clock.next()
    return _join(code, ms & 0xFFFF_FFFF_FFFF, counter, secrets.randbits(48))


def new_id(region: Region) -> uuid.UUID:
    """Return a new id for a row owned by ``region`` (a learner-owned row)."""
    return _build(REGION_CODES[region])


def new_reference_id(home: Region | None = None) -> uuid.UUID:
    """Return a new id for a reference (catalog) row, optionally naming its home region.

    A course's home region is its instructor's: the course's seat ledger lives on
    the shard that serves it.
    """
    return _build(REFERENCE_FLAG | (REGION_CODES[home] if home else 0))


def as_uuid(value: object) -> uuid.UUID:
    """Return ``value`` as a UUID (UUIDs and their string forms are accepted).

    Raises:
        InvalidInput: the value is not a UUID.
    """
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"not an id: {value!r}")


# The first millisecond past what datetime holds (the year 9999 ends before it).
_END_MS = 253_402_300_800_000


def _fields(value: object) -> tuple[int, bool, Region | None]:
    """Return (the time in ms, whether it is a reference id, its region) of one of our ids.

    Raises:
        InvalidInput: the value is not a UUID at all.
        ForeignId: a UUID this platform did not issue.
    """
    ident = as_uuid(value)
    bits = ident.int
    if (bits >> 76) & 0xF != 0x8 or (bits >> 62) & 0b11 != 0b10:
        raise ForeignId(ident, f"version {ident.version}, not an elearn id")
    if (bits >> 48) & 0x3FF != ID_TAG:
        raise ForeignId(ident, "tag mismatch")
    code = (bits >> CODE_SHIFT) & 0xF
    reference = bool(code & REFERENCE_FLAG)
    region_code = code & 0b0111 if reference else code
    region = _CODE_REGIONS.get(region_code)
    if region is None and not (reference and region_code == 0):
        raise ForeignId(ident, f"unknown region code {code}")
    ms = bits >> 80
    if ms >= _END_MS:
        # Our tag, but a time past what datetime holds (year > 9999): not one of ours.
        raise ForeignId(ident, "timestamp out of range")
    return ms, reference, region


def decode(value: object) -> DecodedId:
    """Return what an id says about its row.

    Raises:
        InvalidInput: the value is not a UUID at all.
        ForeignId: a UUID this platform did not issue.
    """
    ms, reference, region = _fields(value)
    created = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return DecodedId(created_at=created, reference=reference, region=region)


def owner_region(value: object) -> Region:
    """Return the region that owns a learner-owned row (every routed call asks it).

    Raises:
        ForeignId: not one of our ids, or a reference (catalog) id, which no
            region owns.
    """
    _, reference, region = _fields(value)
    if reference or region is None:
        raise ForeignId(as_uuid(value), "a catalog id, not owned by a region")
    return region


def is_reference(value: object) -> bool:
    """Return True for a reference (catalog) id."""
    return decode(value).reference


def region_code(region: Region) -> int:
    """Return the 4-bit code stored in ids for ``region`` (shared with the SQL side)."""
    return REGION_CODES[region]


# ------------------------------------------------------------ deterministic ids

_MAX_MS = 0xFFFF_FFFF_FFFF
_MAX_RAND48 = 0xFFFF_FFFF_FFFF


def _compose(code: int, ms: int, counter: int, rand48: int) -> uuid.UUID:
    if not 0 <= ms <= _MAX_MS:
        raise InvalidInput(f"ms must fit 48 bits, got {ms}")
    if not 0 <= counter <= _MAX_COUNTER:
        raise InvalidInput(f"counter must fit 12 bits, got {counter}")
    if not 0 <= rand48 <= _MAX_RAND48:
        raise InvalidInput(f"rand48 must fit 48 bits, got {rand48}")
    return _join(code, ms, counter, rand48)


def make_id(region: Region, *, ms: int, counter: int, rand48: int) -> uuid.UUID:
    """Return the id of a learner-owned row built from given parts (no clock, no randomness).

    The layout is the one :func:`new_id` uses; deterministic generators (seeding)
    pass a timestamp in Unix milliseconds, a 12-bit counter and 48 random bits
    drawn from their own seeded generator.

    Raises:
        InvalidInput: a part does not fit its bit field.
    """
    return _compose(REGION_CODES[region], ms, counter, rand48)


def make_reference_id(
    home: Region | None = None, *, ms: int, counter: int, rand48: int
) -> uuid.UUID:
    """Return a reference (catalog) id built from given parts, like :func:`make_id`.

    Raises:
        InvalidInput: a part does not fit its bit field.
    """
    return _compose(REFERENCE_FLAG | (REGION_CODES[home] if home else 0), ms, counter, rand48)


def id_code(region: Region | None, *, reference: bool = False) -> int:
    """Return the 4-bit region field of an id (owned, or reference with an optional home)."""
    if reference:
        return REFERENCE_FLAG | (REGION_CODES[region] if region else 0)
    if region is None:
        raise InvalidInput("an owned id needs a region")
    return REGION_CODES[region]
