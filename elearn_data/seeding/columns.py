"""Vectorised column builders: numpy arrays in, PostgreSQL COPY text out.

The bulk path never builds a Python object per row and column if numpy can do
the work: ids are composed as two ``uint64`` halves and hex-formatted through a
lookup table, timestamps are Unix milliseconds formatted by
``numpy.datetime_as_string``, money is integer cents. Only the final join into
tab-separated lines is a Python loop, and that one runs in C (``str.join`` over
``zip``).

The id layout is :mod:`elearn_data.ids`' (RFC 9562 version 8 with the owning
region and our tag), composed from its code table (``ids.REGION_CODES`` through
``ids.id_code``, ``ids.HIGH_FIXED_BITS``, ``ids.LOW_FIXED_BITS``,
``ids.CODE_SHIFT``); :func:`uuid_of` turns one composed id back into a
``uuid.UUID`` and the tests check it against :func:`elearn_data.ids.make_id`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import numpy as np

from elearn_data import ids
from elearn_data.regions import Region

NULL: Final = "\\N"
TRUE: Final = "t"
FALSE: Final = "f"

Column: TypeAlias = np.ndarray | list[str] | str

_HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# The layout's fixed bits and the region field's place come from ids' code table.
_HIGH_FIXED: Final = np.uint64(ids.HIGH_FIXED_BITS)
_LOW_FIXED: Final = np.uint64(ids.LOW_FIXED_BITS)
_CODE_SHIFT: Final = np.uint64(ids.CODE_SHIFT)
_MASK48: Final = np.uint64((1 << 48) - 1)


def compose_ids(
    code: int | np.ndarray, ms: np.ndarray, counter: np.ndarray, rand48: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (high, low) 64-bit halves of ids built from their parts.

    ``code`` is the 4-bit region field (:func:`elearn_data.ids.id_code`), ``ms``
    Unix milliseconds, ``counter`` 12 bits, ``rand48`` 48 random bits.
    """
    hi = (ms.astype(np.uint64) << np.uint64(16)) | _HIGH_FIXED
    hi |= counter.astype(np.uint64) & np.uint64(0xFFF)
    codes = np.asarray(code).astype(np.uint64) << _CODE_SHIFT
    lo = _LOW_FIXED | codes | (rand48.astype(np.uint64) & _MASK48)
    return hi, lo


def owned_ids(
    region: Region, ms: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return ids of learner-owned rows of ``region`` created at ``ms`` (random low bits)."""
    counter = np.arange(len(ms), dtype=np.uint64)
    rand48 = rng.integers(0, 1 << 48, size=len(ms), dtype=np.uint64)
    return compose_ids(ids.id_code(region), ms, counter, rand48)


def hex_ids(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Return ids as 32-digit hex strings (PostgreSQL reads a uuid without dashes)."""
    n = len(hi)
    halves = np.empty((n, 2), dtype=">u8")
    halves[:, 0] = hi
    halves[:, 1] = lo
    octets = halves.view(np.uint8).reshape(n, 16)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[octets >> 4]
    digits[:, 1::2] = _HEX[octets & 0x0F]
    return digits.view("S32").ravel().astype("U32")


def uuid_of(hi: int | np.integer[Any], lo: int | np.integer[Any]) -> uuid.UUID:
    """Return the UUID of one composed id."""
    return uuid.UUID(int=(int(hi) << 64) | int(lo))


def uuids(hi: np.ndarray, lo: np.ndarray) -> list[uuid.UUID]:
    """Return composed ids as UUID objects."""
    return [uuid.UUID(int=(h << 64) | low) for h, low in zip(hi.tolist(), lo.tolist(), strict=True)]


def timestamps(ms: np.ndarray) -> np.ndarray:
    """Return Unix milliseconds as ISO 8601 UTC timestamps ("2026-01-02T03:04:05.678Z")."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")


def dates(ms: np.ndarray) -> np.ndarray:
    """Return the UTC calendar dates of Unix milliseconds ("2026-01-02")."""
    return np.datetime_as_string(ms.astype("datetime64[ms]").astype("datetime64[D]"), unit="D")


def integers(values: np.ndarray) -> np.ndarray:
    """Return integers as decimal strings."""
    return values.astype(np.int64).astype(str)


def cents(values: np.ndarray) -> np.ndarray:
    """Return integer cents as decimal amounts ("1999" -> "19.99")."""
    values = values.astype(np.int64)
    whole = (values // 100).astype(str)
    fraction = np.strings.zfill((values % 100).astype(str), 2)
    return np.strings.add(np.strings.add(whole, "."), fraction)


def flags(values: np.ndarray) -> np.ndarray:
    """Return booleans as COPY's t/f."""
    return np.where(values, TRUE, FALSE)


def nullable(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Return ``values`` where ``present``, COPY's NULL elsewhere."""
    return np.where(present, values, NULL)


def bytea(digests: Sequence[bytes]) -> list[str]:
    """Return byte strings in COPY's bytea hex form (the backslash escaped)."""
    return ["\\\\x" + d.hex() for d in digests]


def lines(columns: Sequence[Column]) -> bytes:
    """Return COPY text for columns of equal length (a str column repeats one value)."""
    lists: list[Any] = []
    for column in columns:
        if isinstance(column, str):
            lists.append(itertools.repeat(column))
        elif isinstance(column, np.ndarray):
            lists.append(column.tolist())
        else:
            lists.append(column)
    body = "\n".join(map("\t".join, zip(*lists, strict=False)))
    return (body + "\n").encode("utf-8") if body else b""


# ------------------------------------------------------------------ binary COPY
#
# PostgreSQL's binary COPY format: a header, then per row an int16 field count
# and per field an int32 length (-1 for NULL) followed by the value in network
# byte order; an int16 -1 ends the data. For fixed-width types numpy writes
# whole batches at once, and the server skips text parsing (timestamps, uuids),
# which is most of COPY's cost for narrow tables.

BINARY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
BINARY_TRAILER: Final = b"\xff\xff"
_PG_EPOCH_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z in Unix milliseconds


class Binary:
    """A column for binary COPY: its PostgreSQL type, values, and which rows have one.

    Kinds: ``uuid`` (from :meth:`uuid`), ``bool``, ``int2``, ``int4``, ``int8``,
    ``timestamptz`` and ``date`` (from Unix milliseconds), ``numeric2`` (a
    ``numeric`` with two decimals, from integer cents below 10^10) and
    ``text`` (str or bytes; rows are grouped by length, so keep it to columns
    with few distinct lengths).
    """

    __slots__ = ("dtype", "kind", "lengths", "present", "values")

    _TYPES: Final = {
        "uuid": "V16",
        "bool": "u1",
        "int2": ">i2",
        "int4": ">i4",
        "int8": ">i8",
        "timestamptz": ">i8",
        "date": ">i4",
        "numeric2": "V14",
    }

    def __init__(self, kind: str, values: np.ndarray, present: np.ndarray | None = None) -> None:
        self.kind = kind
        self.present = present
        self.lengths: np.ndarray | None = None
        if kind == "text":
            raw = values if values.dtype.kind == "S" else np.strings.encode(values, "utf-8")
            self.values = raw
            self.lengths = np.strings.str_len(raw).astype(np.int64)
            self.dtype = ""
            return
        self.dtype = self._TYPES[kind]
        if kind == "timestamptz":
            values = (values.astype(np.int64) - _PG_EPOCH_MS) * 1000
        elif kind == "date":
            values = (values.astype(np.int64) - _PG_EPOCH_MS) // 86_400_000
        elif kind == "bool":
            values = values.astype(np.uint8)
        elif kind == "numeric2":
            values = _numeric2(values)
        self.values = values

    @classmethod
    def uuid(cls, hi: np.ndarray, lo: np.ndarray, present: np.ndarray | None = None) -> Binary:
        """Return a uuid column from composed id halves."""
        halves = np.empty((len(hi), 2), dtype=">u8")
        halves[:, 0] = hi
        halves[:, 1] = lo
        return cls("uuid", halves.view("V16").ravel(), present)

    def null(self) -> Binary:
        """Return this column with every row NULL."""
        self.present = np.zeros(len(self.values), dtype=bool)
        return self

    @classmethod
    def constant(cls, value: str, n: int) -> Binary:
        """Return a text column holding ``value`` in every one of ``n`` rows."""
        encoded = value.encode("utf-8")
        return cls("text", np.full(n, encoded, dtype=f"S{max(len(encoded), 1)}"))


def _numeric2(cents: np.ndarray) -> np.ndarray:
    """Return numeric's wire form of amounts in cents: three base-10000 digits, scale 2.

    ``weight = 1`` makes the digits 10000s, units and hundredths-of-a-unit-in-
    10000ths; the server strips the leading and trailing zero digits.
    """
    cents = cents.astype(np.int64)
    if len(cents) and (cents.min() < 0 or cents.max() >= 10_000_000_000):
        raise ValueError("numeric2 takes cents from 0 to 9,999,999,999")
    whole = cents // 100
    wire = np.empty((len(cents), 7), dtype=">i2")
    wire[:, 0] = 3  # ndigits
    wire[:, 1] = 1  # weight of the first digit: 10000^1
    wire[:, 2] = 0  # sign: positive
    wire[:, 3] = 2  # display scale
    wire[:, 4] = whole // 10_000
    wire[:, 5] = whole % 10_000
    wire[:, 6] = (cents % 100) * 100
    return wire.view("V14").ravel()


def binary_rows(columns: Sequence[Binary]) -> bytes:
    """Return rows in binary COPY form (without header and trailer).

    Rows are grouped by which columns are NULL and by the byte length of each
    text column; within a group every row has the same layout, which numpy
    writes as one structured array. Row order is not kept.
    """
    n = len(columns[0].values)
    if n == 0:
        return b""
    keys = []
    for column in columns:
        if column.present is not None:
            keys.append((~column.present).astype(np.int64))
        if column.lengths is not None:
            keys.append(column.lengths)
    if keys:
        layout, group = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
        group = group.ravel()
    else:
        layout, group = np.zeros((1, 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
    parts: list[bytes] = []
    for g, row in enumerate(layout.tolist()):
        rows = np.flatnonzero(group == g) if len(layout) > 1 else None
        fields: list[tuple[str, str]] = [("count", ">i2")]
        plan: list[tuple[Binary, bool, int]] = []
        k = 0
        for i, column in enumerate(columns):
            null = False
            if column.present is not None:
                null = bool(row[k])
                k += 1
            width = np.dtype(column.dtype).itemsize if column.dtype else 0
            if column.lengths is not None:
                width = int(row[k])
                k += 1
            fields.append((f"len{i}", ">i4"))
            if not null and width:
                fields.append((f"val{i}", column.dtype or f"S{width}"))
            plan.append((column, null, width))
        size = n if rows is None else len(rows)
        record = np.empty(size, dtype=np.dtype(fields))
        record["count"] = len(columns)
        for i, (column, null, width) in enumerate(plan):
            record[f"len{i}"] = -1 if null else width
            if not null and width:
                record[f"val{i}"] = column.values if rows is None else column.values[rows]
        parts.append(record.tobytes())
    return b"".join(parts)
