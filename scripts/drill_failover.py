#!/usr/bin/env python3
"""Failover drill: kill a shard primary under concurrent writers, fail over, count lost writes.

Builds a throw-away embedded cluster (3 shards, one streaming replica each) in a
temporary folder on free ports -- never your ELEARN_HOME, because a failover
changes which node is a primary -- migrates it, and then, for each durability
mode and round:

1. starts ``--writers`` threads inserting users on ``--shard`` through one
   ``connect()`` object, recording every acknowledged insert;
2. kills the shard's primary (``pg_ctl stop -m immediate``) and promotes its
   replica at once (``LocalCluster.failover``);
3. waits for the first write acknowledged by the new primary through the same
   ``connect()`` object (no restart), stops the writers, and counts the
   acknowledged inserts missing on the new primary;
4. rebuilds a replica from the new primary (``LocalCluster.up``).

Usage::

    .venv/bin/python scripts/drill_failover.py                 # sync and async, 3 rounds each
    .venv/bin/python scripts/drill_failover.py --rounds 10 --writers 8 --json drill.json

The timing is "kill -> first acknowledged write through the running object";
the failover itself is started immediately, so detection time (what Patroni or
an operator adds) is not included.

``--ha`` drills an HA cluster (``elearn cluster up --ha``: Patroni + etcd)
instead, with no failover command at all: each round SIGKILLs the leader's
postmaster (``--kills postmaster``) or its whole node, Patroni and PostgreSQL
(``--kills node``; the node is started again once a new leader is chosen), and
prints the distribution of the time to a new leader and to the first write the
new leader acknowledges through the same ``connect()`` object, and the lost
acknowledged writes::

    .venv/bin/python scripts/drill_failover.py --ha --rounds 10 --kills postmaster,node
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elearn_data.database import connect
from tests.integration.ha.drills import HADrillResult, crash_drill, ha_cluster
from tests.integration.reliability.drills import DurabilityResult, durability_drill
from tests.support import dedicated_cluster, drill_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="drills per mode (default 3)")
    parser.add_argument("--writers", type=int, default=4, help="writer threads (default 4)")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before the kill")
    parser.add_argument("--shard", default="na", choices=["na", "eu", "apac"])
    parser.add_argument(
        "--modes", default="sync,async", help="comma-separated durability modes (default both)"
    )
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument("--ha", action="store_true", help="drill an HA (Patroni) cluster")
    parser.add_argument(
        "--kills", default="postmaster,node", help="--ha: postmaster and/or node (default both)"
    )
    parser.add_argument("--replicas", type=int, default=1, help="--ha: replicas per shard")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"sync", "async"} or args.rounds < 1 or args.writers < 1:
        parser.error("modes are sync/async; rounds and writers must be positive")
    if args.ha:
        kills = [k.strip() for k in args.kills.split(",") if k.strip()]
        if not kills or not set(kills) <= {"postmaster", "node"} or args.replicas < 1:
            parser.error("kills are postmaster/node; --replicas must be positive")
        return ha_main(args, modes, kills)

    results: list[DurabilityResult] = []
    started = time.monotonic()
    with dedicated_cluster("elearn-failover-drill-") as cluster:
        print(f"cluster ready in {time.monotonic() - started:.1f} s ({cluster.home})")
        for mode in modes:
            cluster.set_durability(mode)  # type: ignore[arg-type]
            for round_no in range(1, args.rounds + 1):
                db = connect(drill_settings(cluster.home))
                try:
                    result = durability_drill(
                        cluster, db, args.shard, writers=args.writers, warmup_s=args.warmup
                    )
                finally:
                    db.close()
                results.append(result)
                print(f"  round {round_no}: {result.summary()}", flush=True)
                cluster.up()  # rebuild a replica from the new primary before the next round

    print(
        "\nmode   rounds  acked(before kill)  lost  failover s (median)  kill->write s (median/max)"
    )
    for mode in modes:
        mine = [r for r in results if r.mode == mode]
        print(
            f"{mode:<6} {len(mine):>6}  {sum(r.acknowledged_before_kill for r in mine):>18}  "
            f"{sum(len(r.lost) for r in mine):>4}  "
            f"{statistics.median(r.failover_s for r in mine):>19.2f}  "
            f"{statistics.median(r.first_write_s for r in mine):>6.2f} / "
            f"{max(r.first_write_s for r in mine):.2f}"
        )
    if args.json:
        payload = [
            {**asdict(r), "lost": [str(u) for u in r.lost], "lost_count": len(r.lost)}
            for r in results
        ]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    lost_in_sync = sum(len(r.lost) for r in results if r.mode == "sync")
    return 1 if lost_in_sync else 0


def _spread(values: list[float]) -> str:
    return f"{min(values):5.2f} {statistics.median(values):6.2f} {max(values):5.2f}"


def ha_main(args: argparse.Namespace, modes: list[str], kills: list[str]) -> int:
    """Crash leaders of an HA cluster; no operator command; print times and losses."""
    results: list[HADrillResult] = []
    started = time.monotonic()
    with ha_cluster(
        "elearn-ha-drill-",
        durability=modes[0],
        replicas=args.replicas,  # type: ignore[arg-type]
    ) as cluster:
        print(f"HA cluster ready in {time.monotonic() - started:.1f} s ({cluster.home})")
        db = connect(drill_settings(cluster.home))
        try:
            for mode in modes:
                cluster.set_durability(mode)  # type: ignore[arg-type]
                for shard in cluster.state().shards:
                    cluster.wait_ready(shard)
                for kill in kills:
                    for round_no in range(1, args.rounds + 1):
                        result = crash_drill(
                            cluster,
                            db,
                            args.shard,
                            kill=kill,  # type: ignore[arg-type]
                            writers=args.writers,
                            warmup_s=args.warmup,
                        )
                        results.append(result)
                        print(f"  {kill} round {round_no}: {result.summary()}", flush=True)
        finally:
            db.close()
            # Report what was measured before the cluster is torn down.
            _ha_report(args, results)
    return 1 if sum(len(r.lost) for r in results if r.mode == "sync") else 0


def _ha_report(args: argparse.Namespace, results: list[HADrillResult]) -> None:
    print(
        "\nmode   kill        rounds  acked   lost  new leader s (min med max)"
        "  first write s (min med max)"
    )
    for mode in dict.fromkeys(r.mode for r in results):
        for kill in dict.fromkeys(r.kill for r in results):
            mine = [r for r in results if r.mode == mode and r.kill == kill]
            if not mine:
                continue
            print(
                f"{mode:<6} {kill:<10} {len(mine):>7} {sum(r.acknowledged_total for r in mine):>6} "
                f"{sum(len(r.lost) for r in mine):>6}  {_spread([r.promoted_s for r in mine])}"
                f"        {_spread([r.first_write_s for r in mine])}",
                flush=True,
            )
    if args.json:
        payload = [
            {**asdict(r), "lost": [str(u) for u in r.lost], "lost_count": len(r.lost)}
            for r in results
        ]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")


if __name__ == "__main__":
    raise SystemExit(main())
