"""Revision 0008 on one shard: definitions, attempts, grading, completion triggers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    complete,
    enroll,
    enrollment,
    make_course,
    make_user,
    one,
    pgcode_of,
    rows,
    run_together,
    scalar,
    sqlstate,
)

CREATE = (
    "SELECT create_assessment(:id, :course, :title, :kind, :passing, :max_attempts, :limit,"
    " :required, :lesson, NULL, now())"
)
ADD = (
    "SELECT add_assessment_question(:id, :a, :order, :kind, 'Prompt', :points,"
    " CAST(:options AS jsonb), CAST(:correct AS jsonb), now())"
)
START = "SELECT start_assessment_attempt(NULL, :e, :a)"
ANSWER = "SELECT answer_assessment_question(:t, :q, CAST(:r AS jsonb))"
SUBMIT = "SELECT submit_assessment_attempt(:t)"
GRADE = "SELECT grade_assessment_answer(:t, :q, :points, :grader, :feedback)"


def create(db: Database, course: uuid.UUID, **overrides: Any) -> uuid.UUID:
    params: dict[str, Any] = {
        "id": ids.new_reference_id(),
        "course": course,
        "title": "Quiz",
        "kind": "quiz",
        "passing": Decimal("60"),
        "max_attempts": None,
        "limit": None,
        "required": True,
        "lesson": None,
    }
    params.update(overrides)
    return uuid.UUID(str(scalar(db, EU, CREATE, **params)))


def add(
    db: Database,
    assessment: uuid.UUID,
    order: int,
    kind: str,
    options: list[str] | None = None,
    correct: list[Any] | None = None,
    points: Decimal | int = 1,
) -> uuid.UUID:
    value = scalar(
        db,
        EU,
        ADD,
        id=ids.new_reference_id(),
        a=assessment,
        order=order,
        kind=kind,
        points=Decimal(points),
        options=json.dumps(options or []),
        correct=json.dumps(correct or []),
    )
    return uuid.UUID(str(value))


def publish(db: Database, assessment: uuid.UUID) -> Any:
    return scalar(db, EU, "SELECT publish_assessment(:a, now())", a=assessment)


def answer(db: Database, attempt: uuid.UUID, question: uuid.UUID, response: Any) -> None:
    rows(db, EU, ANSWER, t=attempt, q=question, r=json.dumps(response))


def attempt_row(db: Database, attempt: uuid.UUID) -> Any:
    return one(db, EU, "SELECT * FROM assessment_attempts WHERE id = :t", t=attempt)


def setup(
    db: Database, *, layout: tuple[int, ...] = (1,), instructor: uuid.UUID | None = None
) -> tuple[Any, uuid.UUID]:
    course = make_course(db, layout=layout, instructor_id=instructor)
    return course, enroll(db, make_user(db), course.id)


# ------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("kind", "correct", "response", "expected"),
    [
        ("single_choice", [1], 1, True),
        ("single_choice", [1], 0, False),
        ("multiple_choice", [0, 2], [2, 0], True),
        ("multiple_choice", [0, 2], [0], False),
        ("multiple_choice", [0, 2], [0, 1, 2], False),
        ("true_false", [False], False, True),
        ("true_false", [False], True, False),
        ("short_answer", ["New York"], "  new\tyork ", True),
        ("short_answer", ["New York", "NYC"], "nyc", True),
        ("short_answer", ["New York"], "York", False),
        ("essay", [], "anything", None),
    ],
)
def test_elearn_answer_correct_grades_each_kind(
    db: Database, kind: str, correct: list[Any], response: Any, expected: bool | None
) -> None:
    got = scalar(
        db,
        EU,
        "SELECT elearn_answer_correct(:k, CAST(:c AS jsonb), CAST(:r AS jsonb))",
        k=kind,
        c=json.dumps(correct),
        r=json.dumps(response),
    )
    assert got is expected


def test_elearn_normalize_answer_ignores_case_and_every_space(db: Database) -> None:
    assert scalar(db, EU, "SELECT elearn_normalize_answer(' Hello \n  World ')") == "helloworld"
    assert scalar(db, EU, "SELECT elearn_normalize_answer(NULL)") == ""


# --------------------------------------------------------------- definitions


def test_create_assessment_checks_its_arguments(db: Database) -> None:
    course, _ = setup(db)
    with sqlstate("EL404", NotFound, match="course .* not found"):
        create(db, ids.new_reference_id())
    with sqlstate("EL400", InvalidInput, match="not a catalog"):
        create(db, course.id, id=ids.new_id(ids.owner_region(make_user(db))))
    with sqlstate("EL400", InvalidInput, match="between 0 and 100"):
        create(db, course.id, passing=Decimal("-1"))
    with sqlstate("EL400", InvalidInput, match="unknown assessment kind"):
        create(db, course.id, kind="poll")
    with sqlstate("EL400", InvalidInput, match="at least 1"):
        create(db, course.id, max_attempts=0)
    with sqlstate("EL400", InvalidInput, match="at least 1 minute"):
        create(db, course.id, limit=0)
    other = make_course(db)
    with sqlstate("EL400", InvalidInput, match="not part of course"):
        create(db, course.id, lesson=other.lessons[0])
    with sqlstate("EL404", NotFound, match="lesson .* not found"):
        create(db, course.id, lesson=ids.new_reference_id())
    made = create(db, course.id, kind=" EXAM ", lesson=course.lessons[0])
    row = one(db, EU, "SELECT * FROM assessments WHERE id = :a", a=made)
    assert (row.kind, row.status, row.question_count, row.total_points) == ("exam", "draft", 0, 0)
    rows(db, EU, "SELECT archive_course(:c, now())", c=course.id)
    with sqlstate("EL409", InvalidState, match="archived"):
        create(db, course.id)


def test_add_assessment_question_checks_the_key_and_keeps_the_totals(db: Database) -> None:
    course, _ = setup(db)
    a = create(db, course.id)
    with sqlstate("EL400", InvalidInput, match="not among the options"):
        add(db, a, 1, "single_choice", ["x", "y"], [2])
    with sqlstate("EL400", InvalidInput, match="not among the options"):
        add(db, a, 1, "multiple_choice", ["x", "y"], ["0"])
    with sqlstate("EL400", InvalidInput, match="repeat"):
        add(db, a, 1, "multiple_choice", ["x", "y"], [1, 1])
    with sqlstate("EL400", InvalidInput, match="2 to 50 options"):
        add(db, a, 1, "single_choice", ["x"], [0])
    with sqlstate("EL400", InvalidInput, match="takes no options"):
        add(db, a, 1, "true_false", ["x", "y"], [True])
    with sqlstate("EL400", InvalidInput, match="one boolean"):
        add(db, a, 1, "true_false", [], ["true"])
    with sqlstate("EL400", InvalidInput, match="accepted texts"):
        add(db, a, 1, "short_answer", [], ["   "])
    with sqlstate("EL400", InvalidInput, match="graded by hand"):
        add(db, a, 1, "essay", [], ["x"])
    with sqlstate("EL400", InvalidInput, match="above 0"):
        add(db, a, 1, "essay", points=0)
    with sqlstate("EL400", InvalidInput, match="unknown question kind"):
        add(db, a, 1, "ranking")
    with sqlstate("EL404", NotFound):
        add(db, ids.new_reference_id(), 1, "essay")
    add(db, a, 1, "multiple_choice", ["x", "y", "z"], [2, 0], points=Decimal("2.5"))
    add(db, a, 2, "essay", points=3)
    with sqlstate("EL412", Duplicate, match="order 2"):
        add(db, a, 2, "essay")
    assert scalar(db, EU, "SELECT correct FROM assessment_questions WHERE question_order = 1"
                  " AND assessment_id = :a", a=a) == [0, 2]  # fmt: skip
    row = one(db, EU, "SELECT question_count, total_points FROM assessments WHERE id = :a", a=a)
    assert (row.question_count, row.total_points) == (2, Decimal("5.50"))


def test_publish_assessment_needs_questions_is_idempotent_and_freezes_them(db: Database) -> None:
    course, _ = setup(db)
    a = create(db, course.id)
    with sqlstate("EL409", InvalidState, match="no questions"):
        publish(db, a)
    with sqlstate("EL404", NotFound):
        publish(db, ids.new_reference_id())
    add(db, a, 1, "true_false", correct=[True])
    first = publish(db, a)
    assert publish(db, a) == first
    with sqlstate("EL409", InvalidState, match="frozen"):
        add(db, a, 2, "essay")


# ------------------------------------------------------------------ attempts


def published_quiz(
    db: Database, course_id: uuid.UUID, **overrides: Any
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    a = create(db, course_id, **overrides)
    q = {
        "single": add(db, a, 1, "single_choice", ["a", "b", "c"], [2]),
        "multiple": add(db, a, 2, "multiple_choice", ["a", "b", "c"], [0, 1]),
        "truth": add(db, a, 3, "true_false", correct=[True]),
        "short": add(db, a, 4, "short_answer", correct=["Ada Lovelace"]),
        "essay": add(db, a, 5, "essay", points=4),
    }
    publish(db, a)
    return a, q


def test_start_assessment_attempt_numbers_attempts_and_enforces_the_rules(db: Database) -> None:
    course, e = setup(db)
    a, _ = published_quiz(db, course.id, max_attempts=2, limit=15)
    with sqlstate("EL404", NotFound, match="enrollment"):
        scalar(db, EU, START, e=ids.new_id(ids.owner_region(e)), a=a)
    with sqlstate("EL404", NotFound, match="assessment"):
        scalar(db, EU, START, e=e, a=ids.new_reference_id())
    with sqlstate("EL400", InvalidInput, match="does not carry the region"):
        scalar(db, EU, "SELECT start_assessment_attempt(:t, :e, :a)", t=ids.new_id(
            Region.ASIA), e=e, a=a)  # fmt: skip
    t1 = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    row = attempt_row(db, t1)
    assert (row.attempt_number, row.status, row.passed) == (1, "in_progress", None)
    assert row.deadline_at - row.started_at == timedelta(minutes=15)
    with sqlstate("EL409", InvalidState, match="still open"):
        scalar(db, EU, START, e=e, a=a)
    scalar(db, EU, SUBMIT, t=t1)
    t2 = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    assert attempt_row(db, t2).attempt_number == 2
    scalar(db, EU, SUBMIT, t=t2)
    with sqlstate("EL409", InvalidState, match="no attempts left"):
        scalar(db, EU, START, e=e, a=a)
    draft = create(db, course.id)
    with sqlstate("EL409", InvalidState, match="draft, not published"):
        scalar(db, EU, START, e=e, a=draft)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=e)
    fresh, _ = published_quiz(db, course.id)
    with sqlstate("EL409", InvalidState, match="dropped"):
        scalar(db, EU, START, e=e, a=fresh)


def test_the_open_attempt_index_backs_the_rule_when_the_function_is_bypassed(
    db: Database,
) -> None:
    course, e = setup(db)
    a, _ = published_quiz(db, course.id)
    scalar(db, EU, START, e=e, a=a)
    with sqlstate("23505", Duplicate):
        rows(
            db,
            EU,
            "INSERT INTO assessment_attempts (id, enrollment_id, assessment_id, attempt_number)"
            " VALUES (:id, :e, :a, 2)",
            id=ids.new_id(ids.owner_region(e)),
            e=e,
            a=a,
        )


def test_answer_assessment_question_replaces_and_normalises_responses(db: Database) -> None:
    course, e = setup(db)
    a, q = published_quiz(db, course.id)
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    answer(db, t, q["multiple"], [1, 0])
    answer(db, t, q["multiple"], [1, 0, 2])
    answer(db, t, q["single"], 2.0)
    got = dict(
        (r.question_id, r.response)
        for r in rows(db, EU, "SELECT question_id, response FROM attempt_answers WHERE"
                      " attempt_id = :t", t=t)
    )  # fmt: skip
    assert got == {q["multiple"]: [0, 1, 2], q["single"]: 2}
    for question, bad in (
        ("single", 3), ("single", 1.5), ("single", "2"), ("multiple", [0, 0]),
        ("multiple", 1), ("truth", 1), ("short", 5), ("short", "x" * 501), ("essay", False),
    ):  # fmt: skip
        with sqlstate("EL400", InvalidInput):
            answer(db, t, q[question], bad)
    answer(db, t, q["essay"], "e" * 20000)
    with sqlstate("EL404", NotFound, match="attempt"):
        answer(db, ids.new_id(ids.owner_region(e)), q["single"], 1)
    with sqlstate("EL404", NotFound, match="question"):
        answer(db, t, ids.new_reference_id(), 1)
    rows(db, EU, "UPDATE assessment_attempts SET started_at = now() - interval '2 hours',"
         " deadline_at = now() - interval '1 hour' WHERE id = :t", t=t)  # fmt: skip
    with sqlstate("EL409", InvalidState, match="time limit"):
        answer(db, t, q["single"], 1)
    scalar(db, EU, SUBMIT, t=t)
    with sqlstate("EL409", InvalidState, match="closed"):
        answer(db, t, q["single"], 1)


def test_submit_grades_objective_questions_and_leaves_essays_waiting(db: Database) -> None:
    instructor = ids.new_id(Region.EUROPE)
    course, e = setup(db, instructor=instructor)
    a, q = published_quiz(db, course.id)
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    answer(db, t, q["single"], 2)
    answer(db, t, q["multiple"], [0])  # not all of them: 0
    answer(db, t, q["short"], "ada lovelace")
    answer(db, t, q["essay"], "An essay")
    assert scalar(db, EU, SUBMIT, t=t) == "submitted"
    row = attempt_row(db, t)
    assert (row.score, row.max_score, row.percent, row.passed, row.graded_at) == (
        Decimal("2.00"), Decimal("8.00"), Decimal("25.00"), None, None,
    )  # fmt: skip
    points = dict(
        (r.question_id, r.points_awarded)
        for r in rows(db, EU, "SELECT question_id, points_awarded FROM attempt_answers"
                      " WHERE attempt_id = :t", t=t)
    )  # fmt: skip
    assert points == {
        q["single"]: 1, q["multiple"]: 0, q["truth"]: 0, q["short"]: 1, q["essay"]: None,
    }  # fmt: skip
    with sqlstate("EL409", InvalidState, match="already submitted"):
        scalar(db, EU, SUBMIT, t=t)
    with sqlstate("EL404", NotFound):
        scalar(db, EU, SUBMIT, t=ids.new_id(ids.owner_region(e)))

    with sqlstate("EL409", InvalidState, match="not the instructor"):
        scalar(db, EU, GRADE, t=t, q=q["essay"], points=4, grader=make_user(db), feedback=None)
    with sqlstate("EL400", InvalidInput, match="between 0 and 4"):
        scalar(db, EU, GRADE, t=t, q=q["essay"], points=Decimal("4.5"), grader=instructor,
               feedback=None)  # fmt: skip
    with sqlstate("EL400", InvalidInput, match="feedback"):
        scalar(db, EU, GRADE, t=t, q=q["essay"], points=1, grader=instructor, feedback="x" * 5001)
    assert scalar(db, EU, GRADE, t=t, q=q["essay"], points=4, grader=instructor,
                  feedback="Fine") == "graded"  # fmt: skip
    row = attempt_row(db, t)
    assert (row.score, row.percent, row.passed) == (Decimal("6.00"), Decimal("75.00"), True)
    answered = one(db, EU, "SELECT graded_by, feedback FROM attempt_answers WHERE attempt_id = :t"
                   " AND question_id = :q", t=t, q=q["essay"])  # fmt: skip
    assert (answered.graded_by, answered.feedback) == (instructor, "Fine")


def test_grading_an_open_attempt_is_invalid_state(db: Database) -> None:
    instructor = ids.new_id(Region.EUROPE)
    course, e = setup(db, instructor=instructor)
    a, q = published_quiz(db, course.id)
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    with sqlstate("EL409", InvalidState, match="not submitted"):
        scalar(db, EU, GRADE, t=t, q=q["essay"], points=1, grader=instructor, feedback=None)


def test_concurrent_submits_of_one_attempt_grade_it_once(db: Database) -> None:
    course, e = setup(db)
    a, q = published_quiz(db, course.id)
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    answer(db, t, q["truth"], True)
    results = run_together(8, lambda _i: scalar(db, EU, SUBMIT, t=t))
    assert sorted(str(pgcode_of(r) or r) for r in results) == ["EL409"] * 7 + ["graded"]
    assert scalar(db, EU, "SELECT count(*) FROM attempt_answers WHERE attempt_id = :t", t=t) == 5


def test_concurrent_starts_of_one_enrollment_open_one_attempt(db: Database) -> None:
    course, e = setup(db)
    a, _ = published_quiz(db, course.id, max_attempts=3)
    results = run_together(8, lambda _i: scalar(db, EU, START, e=e, a=a))
    assert sorted(pgcode_of(r) or "ok" for r in results) == ["EL409"] * 7 + ["ok"]
    assert scalar(db, EU, "SELECT count(*) FROM assessment_attempts WHERE enrollment_id = :e",
                  e=e) == 1  # fmt: skip


# ---------------------------------------------------------------- completion


def pass_quiz(db: Database, e: uuid.UUID, a: uuid.UUID, q: uuid.UUID) -> uuid.UUID:
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    answer(db, t, q, True)
    scalar(db, EU, SUBMIT, t=t)
    return t


def test_the_progress_trigger_waits_for_required_assessments(db: Database) -> None:
    course, e = setup(db, layout=(2,))
    a = create(db, course.id)
    q = add(db, a, 1, "true_false", correct=[True])
    publish(db, a)
    optional = create(db, course.id, required=False)
    add(db, optional, 1, "essay")
    publish(db, optional)
    complete(db, e, course.lessons[0])
    assert complete(db, e, course.lessons[1]).status == "active"
    t = pass_quiz(db, e, a, q)
    row = enrollment(db, e)
    assert (row.status, row.completed_at is not None) == ("completed", True)
    # Deleting the passed attempt reverts (the attempt trigger); a new pass completes again.
    rows(db, EU, "DELETE FROM assessment_attempts WHERE id = :t", t=t)
    assert enrollment(db, e).status == "active"
    pass_quiz(db, e, a, q)
    assert enrollment(db, e).status == "completed"
    rows(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=e, l=course.lessons[1])
    assert enrollment(db, e).status == "active"
    assert complete(db, e, course.lessons[1]).status == "completed"


def test_publishing_a_required_assessment_reverts_completed_enrollments_set_based(
    db: Database,
) -> None:
    course = make_course(db, layout=(1,))
    learners = [enroll(db, make_user(db), course.id) for _ in range(3)]
    for e in learners:
        complete(db, e, course.lessons[0])
    rows(db, EU, "SELECT issue_certificate(:e, 'https://c.example.com/1')", e=learners[0])
    a = create(db, course.id)
    q = add(db, a, 1, "true_false", correct=[True])
    assert {enrollment(db, e).status for e in learners} == {"completed"}
    publish(db, a)
    after = [enrollment(db, e) for e in learners]
    assert {(r.status, r.completed_at, r.certificate_url) for r in after} == {
        ("active", None, None)
    }
    pass_quiz(db, learners[2], a, q)
    # Making the assessment optional completes the others again; required again reverts.
    rows(db, EU, "UPDATE assessments SET required = false WHERE id = :a", a=a)
    assert {enrollment(db, e).status for e in learners} == {"completed"}
    rows(db, EU, "UPDATE assessments SET required = true WHERE id = :a", a=a)
    assert [enrollment(db, e).status for e in learners] == ["active", "active", "completed"]
    rows(db, EU, "DELETE FROM assessments WHERE id = :a", a=a)
    assert {enrollment(db, e).status for e in learners} == {"completed"}


def test_elearn_sync_completion_reports_how_many_enrollments_changed(db: Database) -> None:
    course = make_course(db, layout=(1,))
    e = enroll(db, make_user(db), course.id)
    complete(db, e, course.lessons[0])
    sql = "SELECT elearn_sync_completion(NULL, ARRAY[CAST(:c AS uuid)])"
    assert scalar(db, EU, sql, c=course.id) == 0
    a = create(db, course.id)
    add(db, a, 1, "essay")
    # A published required assessment inserted directly (bulk path) is caught by the
    # insert trigger as well.
    rows(
        db,
        EU,
        "INSERT INTO assessments (id, course_id, title, status, question_count, total_points,"
        " published_at) VALUES (:id, :c, 'Direct', 'published', 1, 1, now())",
        id=ids.new_reference_id(),
        c=course.id,
    )
    assert enrollment(db, e).status == "active"


def test_get_course_gradebook_returns_a_row_per_enrollment_and_assessment(db: Database) -> None:
    course, e = setup(db)
    other = enroll(db, make_user(db), course.id)
    assert [r.assessment_id for r in rows(db, EU, "SELECT * FROM get_course_gradebook(:c)",
                                          c=course.id)] == [None, None]  # fmt: skip
    a = create(db, course.id)
    q = add(db, a, 1, "true_false", correct=[True])
    publish(db, a)
    pass_quiz(db, e, a, q)
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=a)))
    assert t
    book = {r.enrollment_id: r for r in rows(db, EU, "SELECT * FROM get_course_gradebook(:c)",
                                             c=course.id)}  # fmt: skip
    assert (book[e].best_percent, book[e].attempts, book[e].passed) == (
        Decimal("100.00"), 2, True,
    )  # fmt: skip
    assert (book[other].best_percent, book[other].attempts, book[other].passed) == (None, 0, False)
    assert book[e].learner.startswith("Ada ")


def test_a_pass_racing_a_new_required_assessment_never_leaves_the_enrollment_completed(
    db: Database,
) -> None:
    """The pass commits while the publication is running: the publication sees it and reverts."""
    course, e = setup(db)
    first = create(db, course.id)
    q = add(db, first, 1, "true_false", correct=[True])
    publish(db, first)
    complete(db, e, course.lessons[0])
    second = create(db, course.id)
    add(db, second, 1, "essay")
    t = uuid.UUID(str(scalar(db, EU, START, e=e, a=first)))
    answer(db, t, q, True)

    engine = db.cluster.engines.primary(EU).engine
    passing = engine.connect()
    passing.begin()
    passing.execute(text(SUBMIT), {"t": t})  # completes the enrollment, not committed yet
    done = threading.Event()
    worker = threading.Thread(target=lambda: (publish(db, second), done.set()))
    worker.start()
    # Let the publication reach the enrollment's row lock (or finish, if it never waits).
    deadline = time.monotonic() + 10
    while not done.is_set() and time.monotonic() < deadline:
        waiting = scalar(db, EU, "SELECT count(*) FROM pg_locks WHERE NOT granted")
        if waiting:
            break
        time.sleep(0.02)
    passing.commit()
    passing.close()
    worker.join(timeout=30)
    assert done.is_set()
    assert enrollment(db, e).status == "active"  # the second assessment is not passed
