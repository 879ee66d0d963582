#!/usr/bin/env python
"""Profile one side of one ``elearn bench`` workload with pyinstrument (or cProfile).

Runs against the embedded cluster of ELEARN_HOME, on scratch databases, exactly
like ``elearn bench``: the workload's set-up is not profiled, then its measured
side (or ``--side baseline``) runs ``--batches`` batches under the profiler.

    ELEARN_HOME=/tmp/x .venv/bin/python scripts/profile_bench.py point_read
    ELEARN_HOME=/tmp/x .venv/bin/python scripts/profile_bench.py routing_overhead --html out.html
    ELEARN_HOME=/tmp/x .venv/bin/python scripts/profile_bench.py point_read --cprofile

The timing of each batch is printed too (per-unit microseconds), so a change
can be checked against the profile it was meant to fix.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

from elearn_data.bench.data import LearnerFactory
from elearn_data.bench.runner import bench_settings, get_sizes
from elearn_data.bench.scratch import scratch_databases
from elearn_data.bench.workloads import WORKLOADS, Context, load_read_pool
from elearn_data.config import load_settings
from elearn_data.database import Database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=[w.name for w in WORKLOADS])
    parser.add_argument("--side", choices=["measured", "baseline"], default="measured")
    parser.add_argument("--profile", default="quick", help="sizes: smoke, quick or full")
    parser.add_argument("--batches", type=int, default=10, help="chunks of work to profile")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML report here")
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead (C calls too)")
    parser.add_argument("--interval", type=float, default=0.0001, help="pyinstrument interval (s)")
    args = parser.parse_args()

    sizes = get_sizes(args.profile)
    cls = next(w for w in WORKLOADS if w.name == args.workload)
    with scratch_databases(load_settings(), progress=print) as scratch:
        settings = bench_settings(scratch)
        db = Database(settings, application="elearn-profile")
        try:
            ctx = Context(db, settings, sizes, LearnerFactory(), random.Random(1))
            load_read_pool(ctx)
            workload = cls(ctx)
            workload.setup()
            side = workload.measured if args.side == "measured" else workload.baseline
            chunks = workload.chunks()
            side(0, 0)  # warm-up: caches, pools, prepared statements
            if args.cprofile:
                profiler = cProfile.Profile()
                profiler.enable()
                samples = [side(1 + i // chunks, i % chunks) for i in range(args.batches)]
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats("tottime")
                stats.print_stats(30)
            else:
                from pyinstrument import Profiler  # noqa: PLC0415

                profiler = Profiler(interval=args.interval)
                profiler.start()
                start = time.perf_counter()
                samples = [side(1 + i // chunks, i % chunks) for i in range(args.batches)]
                elapsed = time.perf_counter() - start
                profiler.stop()
                print(profiler.output_text(unicode=False, color=False, show_all=False))
                if args.html:
                    args.html.write_text(profiler.output_html(), encoding="utf-8")
                print(f"profiled wall time {elapsed:.2f} s")
            for sample in samples:
                print(
                    f"{args.workload} {args.side}: {sample.units} units, "
                    f"{sample.seconds * 1e6 / sample.units:.1f} us/unit (under the profiler)"
                )
            workload.finish()
        finally:
            db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
