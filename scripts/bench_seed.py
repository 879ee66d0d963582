#!/usr/bin/env python
"""Benchmark ``elearn seed`` against PostgreSQL's own COPY, measured in the same run.

Usage::

    ELEARN_HOME=/tmp/bench .venv/bin/python scripts/bench_seed.py --scale large [--seed 0]
    .venv/bin/python scripts/bench_seed.py --home /tmp/bench --scale medium --json

1. Seeds the scale (``--reset``: whatever the cluster held is replaced) and
   reports elapsed time, rows, rows/s, the time of every phase and the peak
   RSS of this process (``ru_maxrss``: the generator, the COPY buffers and the
   in-process content store together).
2. Baseline: for the biggest tables, takes up to ``--sample`` rows per shard
   that the seed just wrote (``COPY ... TO STDOUT``, in text and in binary),
   then times a plain ``COPY ... FROM STDIN`` of those pre-generated rows into
   a copy of the table without indexes (``LIKE ... INCLUDING DEFAULTS
   INCLUDING CONSTRAINTS``, WAL-logged like the real load), on every shard at
   once, and rolls it back. That is PostgreSQL's ingest rate on this machine,
   beside which the seeder's end-to-end rate (generation, COPY, index builds,
   verification, content store, commit) is reported as a ratio.

Absolute numbers vary by ~30% between runs on a shared machine; the ratio is
the figure to compare.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
from psycopg2 import sql

from elearn_data.config import Settings, load_settings, with_user
from elearn_data.seeding import seed

FORMATS = {"text": "text", "binary": "binary"}
BASELINE_TABLES = ("users", "enrollments", "lesson_progress", "transactions", "invoices")


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def owner_connection(settings: Settings, shard: str) -> Any:
    """Return a psycopg2 connection to the shard primary as the schema owner."""
    primary = settings.shards[shard].primary
    assert primary is not None
    owner_user, password = settings.owner_credentials()
    conn = psycopg2.connect(
        with_user(primary, owner_user),
        password=password or settings.shard_password(shard),
        application_name="elearn_data-bench-seed",
    )
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
        cur.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def sample_rows(settings: Settings, table: str, limit: int, fmt: str) -> dict[str, bytes]:
    """Return up to ``limit`` rows of ``table`` per shard, as COPY data in ``fmt``."""
    samples: dict[str, bytes] = {}
    for shard in settings.shard_names:
        conn = owner_connection(settings, shard)
        try:
            buffer = io.BytesIO()
            with conn.cursor() as cur:
                cur.copy_expert(
                    sql.SQL("COPY (SELECT * FROM {} LIMIT {}) TO STDOUT (FORMAT {})").format(
                        sql.Identifier(table), sql.Literal(limit), sql.SQL(FORMATS[fmt])
                    ),
                    buffer,
                )
            samples[shard] = buffer.getvalue()
        finally:
            conn.close()
    return samples


def copy_rate(
    settings: Settings, table: str, samples: dict[str, bytes], fmt: str
) -> tuple[int, float]:
    """Time a plain COPY of the samples into an index-free copy of ``table`` on every shard."""
    barrier = threading.Barrier(len(samples))

    def load(shard: str) -> tuple[int, float]:
        conn = owner_connection(settings, shard)
        try:
            with conn.cursor() as cur:
                copy_table = sql.Identifier(f"bench_copy_{table}")
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                    ).format(copy_table, sql.Identifier(table))
                )
                barrier.wait()
                started = time.perf_counter()
                cur.copy_expert(
                    sql.SQL("COPY {} FROM STDIN (FORMAT {})").format(
                        copy_table, sql.SQL(FORMATS[fmt])
                    ),
                    io.BytesIO(samples[shard]),
                    size=1 << 20,
                )
                rows = cur.rowcount
                elapsed = time.perf_counter() - started
            return rows, elapsed
        finally:
            conn.rollback()
            conn.close()

    with ThreadPoolExecutor(len(samples)) as pool:
        results = list(pool.map(load, samples))
    rows = sum(r for r, _ in results)
    wall = max(e for _, e in results)
    return rows, wall


def main() -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="small", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", help="ELEARN_HOME of the cluster (default: the environment's)")
    parser.add_argument("--sample", type=int, default=200_000, help="baseline rows per shard")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings(**({"home": args.home} if args.home else {}))

    last: dict[str, int] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if not args.json and phase not in last:
            print(f"  {phase} ({total:,}) ...", file=sys.stderr, flush=True)
        last[phase] = done

    report = seed(settings, args.scale, args.seed, reset=True, progress=progress)
    seed_peak = peak_rss_mib()

    baseline: dict[str, dict[str, float]] = {}
    total_rows = {"text": 0, "binary": 0}
    total_time = {"text": 0.0, "binary": 0.0}
    for table in BASELINE_TABLES:
        baseline[table] = {}
        for fmt in ("text", "binary"):
            samples = sample_rows(settings, table, args.sample, fmt)
            rows, wall = copy_rate(settings, table, samples, fmt)
            del samples
            baseline[table][f"{fmt}_rows"] = rows
            baseline[table][f"{fmt}_rows_per_s"] = rows / wall if wall else 0.0
            total_rows[fmt] += rows
            total_time[fmt] += wall
    copy_text = total_rows["text"] / total_time["text"] if total_time["text"] else 0.0
    copy_binary = total_rows["binary"] / total_time["binary"] if total_time["binary"] else 0.0

    result: dict[str, Any] = {
        "scale": report.scale,
        "seed": report.seed,
        "elapsed_s": round(report.elapsed_s, 1),
        "rows": report.rows,
        "rows_per_s": round(report.rows_per_s),
        "peak_rss_mib": round(seed_peak),
        "phases_s": {k: round(v, 1) for k, v in report.phases.items()},
        "tables": report.table_totals(),
        "content_documents": report.content_documents,
        "preference_documents": report.preference_documents,
        "copy_text_rows_per_s": round(copy_text),
        "copy_binary_rows_per_s": round(copy_binary),
        "seed_vs_copy_text": round(report.rows_per_s / copy_text, 2) if copy_text else None,
        "baseline": {
            t: {k: round(v) for k, v in figures.items()} for t, figures in baseline.items()
        },
        "notes": list(report.notes),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"scale {result['scale']} (seed {result['seed']}):")
    print(
        f"  seed      {result['elapsed_s']:>8.1f} s  {result['rows']:>12,} rows  "
        f"{result['rows_per_s']:>10,} rows/s  peak RSS {result['peak_rss_mib']:,} MiB"
    )
    print("  phases    " + ", ".join(f"{k} {v}s" for k, v in result["phases_s"].items()))
    print(
        f"  COPY      text {result['copy_text_rows_per_s']:>10,} rows/s   "
        f"binary {result['copy_binary_rows_per_s']:>10,} rows/s   "
        f"(plain COPY of pre-generated rows, no indexes, 3 shards at once)"
    )
    for table, figures in result["baseline"].items():
        print(
            f"    {table:<16} text {figures['text_rows_per_s']:>10,} rows/s   "
            f"binary {figures['binary_rows_per_s']:>10,} rows/s   ({figures['text_rows']:,} rows)"
        )
    print(f"  seed end-to-end / COPY text = {result['seed_vs_copy_text']}")
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
