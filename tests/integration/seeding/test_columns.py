"""The COPY encoders, checked against PostgreSQL itself on a shard primary."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import psycopg2.extras

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.regions import Region
from elearn_data.seeding import columns as col


def _load(cluster: LocalCluster, ddl: str, payload: bytes, *, binary: bool) -> list[tuple]:
    state = cluster.state()
    conn = cluster.admin_connect(state.primary_of(state.shards[0]), dbname="elearn")
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f"CREATE TEMP TABLE t ({ddl})")
            if binary:
                payload = col.BINARY_HEADER + payload + col.BINARY_TRAILER
            cur.copy_expert(
                "COPY t FROM STDIN" + (" (FORMAT binary)" if binary else ""), io.BytesIO(payload)
            )
            cur.execute("SELECT * FROM t ORDER BY n")
            return list(cur.fetchall())
    finally:
        conn.close()


def test_binary_copy_writes_every_supported_type_as_postgresql_reads_it(
    cluster: LocalCluster,
) -> None:
    hi, lo = col.compose_ids(
        ids.id_code(Region.EUROPE),
        np.array([1_700_000_000_123, 1_700_000_000_124, 1_700_000_000_125]),
        np.array([0, 1, 2]),
        np.array([5, 6, 7]),
    )
    ms = np.array([1_700_000_000_123, 946_684_800_000, 1_790_000_000_999])
    payload = col.binary_rows(
        [
            col.Binary("int4", np.array([1, 2, 3])),
            col.Binary.uuid(hi, lo),
            col.Binary("text", np.array(["active", "completed", "déjà vu"])),
            col.Binary("numeric2", np.array([3333, 10000, 0])),
            col.Binary("numeric2", np.array([21999, 5, 9_999_999_999])),
            col.Binary("text", np.array(["x", "yy", "z"]), np.array([True, False, True])),
            col.Binary("bool", np.array([True, False, True])),
            col.Binary("timestamptz", ms, np.array([True, True, False])),
            col.Binary("date", ms),
            col.Binary("int2", np.array([12, -1, 0])),
            col.Binary.constant("USD", 3),
        ]
    )
    got = _load(
        cluster,
        "n int, id uuid, s varchar(20), p numeric(5,2), a numeric(12,2), t text, b bool, "
        "ts timestamptz, d date, m smallint, c varchar(3)",
        payload,
        binary=True,
    )
    made = [
        ids.make_id(Region.EUROPE, ms=m, counter=c, rand48=r)
        for m, c, r in [
            (1_700_000_000_123, 0, 5),
            (1_700_000_000_124, 1, 6),
            (1_700_000_000_125, 2, 7),
        ]
    ]
    assert got == [
        (
            1,
            made[0],
            "active",
            Decimal("33.33"),
            Decimal("219.99"),
            "x",
            True,
            datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
            date(2023, 11, 14),
            12,
            "USD",
        ),
        (
            2,
            made[1],
            "completed",
            Decimal("100.00"),
            Decimal("0.05"),
            None,
            False,
            datetime(2000, 1, 1, tzinfo=UTC),
            date(2000, 1, 1),
            -1,
            "USD",
        ),
        (
            3,
            made[2],
            "déjà vu",
            Decimal("0.00"),
            Decimal("99999999.99"),
            "z",
            True,
            None,
            date(2026, 9, 21),
            0,
            "USD",
        ),
    ]


def test_text_copy_escapes_nulls_bytea_and_timestamps(cluster: LocalCluster) -> None:
    digest = bytes(range(32))
    payload = col.lines(
        [
            col.integers(np.array([1, 2])),
            col.nullable(np.array(["tab\\there", "x"]), np.array([True, False])),
            col.bytea([digest, digest]),
            col.timestamps(np.array([0, 1_700_000_000_123])),
            col.cents(np.array([1999, 5])),
            col.flags(np.array([True, False])),
        ]
    )
    got = _load(
        cluster,
        "n int, s text, h bytea, ts timestamptz, a numeric(12,2), b bool",
        payload,
        binary=False,
    )
    assert [(n, s, bytes(h), ts, a, b) for n, s, h, ts, a, b in got] == [
        (1, "tab\there", digest, datetime(1970, 1, 1, tzinfo=UTC), Decimal("19.99"), True),
        (
            2,
            None,
            digest,
            datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
            Decimal("0.05"),
            False,
        ),
    ]
