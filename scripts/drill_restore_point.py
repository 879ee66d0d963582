"""How long a cross-shard restore point holds back two-phase commits under load.

Runs cross-region enrollments and drops (every one a two-phase commit: the
learner's shard plus the course's seat ledger) from several threads against the
cluster under ELEARN_HOME, takes restore points while they run, and prints the
fence's hold time and the latency of the commits that overlapped a point
against those that did not. Backups must be initialised (`elearn backup init`).

    python scripts/drill_restore_point.py --points 10 --threads 4
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from pathlib import Path

from elearn_data import connect
from elearn_data.cluster.backup import Backups
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import elearn_home, load_settings

REGIONS = ("north_america", "asia", "south_america", "oceania")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    backups = Backups(LocalCluster(Path(elearn_home())))
    settings = load_settings().model_copy(update={"recover_interval_s": 0})
    with connect(settings) as db:
        tag = uuid.uuid4().hex[:6]
        teacher = db.users.register(
            email=f"drill-teacher-{tag}@example.org",
            password="drill-password",
            first_name="Drill",
            last_name="Teacher",
            region="europe",
            role="instructor",
        )
        course = db.catalog.create_course(
            code=f"DRILL-{tag}", title="Drill", instructor_id=teacher, max_enrollments=10_000
        )
        module = db.catalog.add_module(course, title="m", order=1)
        db.catalog.add_lesson(module, title="l", order=1, lesson_type="video")
        db.catalog.publish(course)
        learners = [
            db.users.register(
                email=f"drill-{tag}-{i}@example.org",
                password="drill-password",
                first_name="Drill",
                last_name=f"Learner {i}",
                region=REGIONS[i % len(REGIONS)],
            )
            for i in range(args.threads * 4)
        ]

        commits: list[tuple[float, float]] = []  # (start, end) of each enroll/drop
        lock = threading.Lock()
        stop = threading.Event()

        def work(mine: list[uuid.UUID]) -> None:
            while not stop.is_set():
                for learner in mine:
                    for op in ("enroll", "drop"):
                        started = time.monotonic()
                        if op == "enroll":
                            enrollment = db.enrollments.enroll(learner, course)
                        else:
                            db.enrollments.drop(enrollment)
                        with lock:
                            commits.append((started, time.monotonic()))

        threads = [
            threading.Thread(target=work, args=(learners[i :: args.threads],), daemon=True)
            for i in range(args.threads)
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)
        windows: list[tuple[float, float]] = []
        pauses: list[float] = []
        for n in range(args.points):
            started = time.monotonic()
            point = backups.restore_point(f"drill-{tag}-{n}")
            windows.append((started, time.monotonic()))
            pauses.append(point.pause_s)
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)

    def overlaps(c: tuple[float, float]) -> bool:
        return any(c[0] < w[1] and c[1] > w[0] for w in windows)

    during = [(e - s) * 1000 for s, e in commits if overlaps((s, e))]
    outside = [(e - s) * 1000 for s, e in commits if not overlaps((s, e))]
    print(f"restore points: {len(pauses)}; two-phase commits: {len(commits)}")
    print(
        f"fence held (decisions paused): median {statistics.median(pauses) * 1000:.1f} ms, "
        f"max {max(pauses) * 1000:.1f} ms"
    )
    if during and outside:
        print(
            f"commit latency overlapping a point: median {statistics.median(during):.1f} ms, "
            f"max {max(during):.1f} ms; others: median {statistics.median(outside):.1f} ms, "
            f"max {max(outside):.1f} ms"
        )


if __name__ == "__main__":
    main()
