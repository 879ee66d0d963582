"""A bounded load run through both workers: 2,000 requests from 16 threads, no errors."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from elearn_data.web.client import ApiClient
from elearn_data.web.server import ServerProcess

from .conftest import client_for, make_course, register

THREADS = 16
PER_THREAD = 125  # 2,000 requests in all


def test_two_thousand_requests_from_sixteen_threads_have_no_errors(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    course = make_course(server, lessons=3)
    statuses: Counter[int] = Counter()
    workers: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(THREADS)

    def learner(n: int) -> None:
        client = client_for(server)
        # The course was written a moment ago by another client: start from its token.
        client.causal = course.instructor.causal
        try:
            register(client, region=("europe", "asia", "north_america")[n % 3])
            enrolled = client.request("POST", "/v1/enrollments", {"course_id": course.id})
            eid = enrolled.body["id"]
            ready.wait(timeout=120)
            local: Counter[int] = Counter()
            for i in range(PER_THREAD - 2):  # register and enroll count as two
                kind = i % 5
                if kind == 0:
                    lesson = course.lessons[i % len(course.lessons)]
                    reply = client.request(
                        "POST",
                        f"/v1/enrollments/{eid}/lessons/{lesson}/complete",
                        {"time_spent_minutes": 1},
                    )
                elif kind == 1:
                    reply = client.request("GET", f"/v1/enrollments/{eid}/progress")
                elif kind == 2:
                    reply = client.request("GET", f"/v1/courses/{course.id}", auth=False)
                elif kind == 3:
                    reply = client.request("GET", "/v1/users/me")
                else:
                    reply = client.request("GET", "/v1/enrollments")
                local[reply.status] += 1
                if reply.status not in (200, 201, 429):
                    with lock:
                        failures.append(f"{reply.status} {reply.body}")
                with lock:
                    workers[reply.worker] += 1
            with lock:
                statuses.update(local)
                statuses[201] += 2
        except Exception as exc:  # a thread's failure must fail the test, not vanish
            with lock:
                failures.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=learner, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    print(f"load: {dict(statuses)} by worker {dict(workers)}")
    assert failures == []
    assert sum(statuses.values()) == THREADS * PER_THREAD
    assert set(statuses) <= {200, 201, 429}
    assert len(workers) == 2
