"""db.assessments: catalog definitions on every shard, attempts on the learner's, grading, races."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.models import (
    Assessment,
    AssessmentAttempt,
    AssessmentQuestion,
    AttemptAnswer,
)
from elearn_data.repositories.views import AttemptView
from tests.integration.api.helpers import published_course, register


def quiz(
    db: Database,
    course: uuid.UUID,
    *,
    publish: bool = True,
    required: bool = True,
    **overrides: object,
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """A quiz with one question of each kind (essay excluded): 4 points in all."""
    assessment = db.assessments.create(
        course, title="Check your understanding", required=required, **overrides
    )  # type: ignore[arg-type]
    questions = {
        "single": db.assessments.add_question(
            assessment,
            prompt="2 + 2?",
            kind="single_choice",
            order=1,
            options=("3", "4", "5"),
            correct=(1,),
        ),
        "multiple": db.assessments.add_question(
            assessment,
            prompt="Which are prime?",
            kind="multiple_choice",
            order=2,
            options=("2", "4", "5", "9"),
            correct=(2, 0),
        ),
        "true_false": db.assessments.add_question(
            assessment, prompt="The sky is green.", kind="true_false", order=3, correct=(False,)
        ),
        "short": db.assessments.add_question(
            assessment,
            prompt="Capital of the USA's largest city's state?",
            kind="short_answer",
            order=4,
            correct=("New York", "Albany"),
        ),
    }
    if publish:
        db.assessments.publish(assessment)
    return assessment, questions


def course_with_learner(
    db: Database, *, learner_region: str = "asia", lessons: int = 2
) -> tuple[uuid.UUID, list[uuid.UUID], uuid.UUID, uuid.UUID]:
    """(course, lessons, enrollment, instructor): a european course, a learner elsewhere."""
    course, lesson_ids = published_course(db, instructor_region="europe", lessons=lessons)
    learner = register(db, learner_region)
    enrollment = db.enrollments.enroll(learner, course)
    return course, lesson_ids, enrollment, db.catalog.get_course(course).instructor_id


def rows_per_shard(db: Database, statement: object) -> dict[str, int]:
    found = {}
    with db.writer() as uow:
        for shard in db.router.shards:
            found[shard] = int(uow.execute(statement, shard=shard).scalar_one())  # type: ignore[arg-type]
    return found


# ---------------------------------------------------------------- definitions


def test_an_assessment_is_catalog_data_with_the_same_rows_on_every_shard(clean: Database) -> None:
    course, lessons = published_course(clean)
    assessment, questions = quiz(
        clean, course, kind="exam", passing_percent=Decimal("75"), max_attempts=3,
        time_limit_minutes=30, lesson_id=lessons[0],
    )  # fmt: skip
    view = clean.assessments.get(assessment)
    assert (view.course_id, view.kind, view.passing_percent, view.max_attempts) == (
        course, "exam", Decimal("75.00"), 3,
    )  # fmt: skip
    assert (view.time_limit_minutes, view.required, view.status, view.lesson_id) == (
        30, True, "published", lessons[0],
    )  # fmt: skip
    assert view.total_points == Decimal("4.00")
    assert [q.order for q in view.questions] == [1, 2, 3, 4]
    assert view.questions[0].options == ("3", "4", "5")
    assert view.questions[2].options == ()
    # A learner's view never carries the answer key.
    assert all("correct" not in q.to_dict() for q in view.questions)
    assert clean.assessments.for_course(course) == [view]
    snapshot = select(
        func.count(), func.max(Assessment.updated_at), func.max(Assessment.published_at)
    ).where(Assessment.id == assessment)
    with clean.writer() as uow:
        copies = {tuple(uow.execute(snapshot, shard=s).one()) for s in clean.router.shards}
        keys = {
            tuple(
                uow.execute(
                    select(AssessmentQuestion.correct)
                    .where(AssessmentQuestion.assessment_id == assessment)
                    .order_by(AssessmentQuestion.question_order),
                    shard=s,
                ).scalars()
            ).__repr__()
            for s in clean.router.shards
        }
    assert len(copies) == 1 and next(iter(copies))[0] == 1
    assert keys == {repr(([1], [0, 2], [False], ["New York", "Albany"]))}
    assert questions["multiple"] in {q.id for q in view.questions}


def test_bad_definitions_raise_domain_errors_and_write_nothing(clean: Database) -> None:
    course, _ = published_course(clean)
    with pytest.raises(NotFound):
        clean.assessments.create(ids.new_reference_id(), title="x")
    with pytest.raises(NotFound):
        clean.assessments.create(uuid.uuid4(), title="x")
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        clean.assessments.create(course, title="x", passing_percent=101)
    with pytest.raises(InvalidInput, match="kind"):
        clean.assessments.create(course, title="x", kind="survey")
    with pytest.raises(InvalidInput, match="max_attempts"):
        clean.assessments.create(course, title="x", max_attempts=0)
    assert clean.assessments.for_course(course) == []

    assessment = clean.assessments.create(course, title="Quiz")
    with pytest.raises(InvalidState, match="no questions"):
        clean.assessments.publish(assessment)
    add = clean.assessments.add_question
    with pytest.raises(InvalidInput, match="not among the options"):
        add(assessment, prompt="p", kind="single_choice", order=1, options=("a", "b"), correct=2)
    with pytest.raises(InvalidInput, match="points"):
        add(assessment, prompt="p", kind="true_false", order=1, points=0, correct=True)
    with pytest.raises(InvalidInput, match="points"):
        add(assessment, prompt="p", kind="true_false", order=1, points=-2, correct=True)
    with pytest.raises(InvalidInput, match="kind"):
        add(assessment, prompt="p", kind="matching", order=1)
    with pytest.raises(InvalidInput, match="exactly one"):
        add(assessment, prompt="p", kind="single_choice", order=1, options=("a", "b"), correct=())
    with pytest.raises(InvalidInput, match="no answer key"):
        add(assessment, prompt="p", kind="essay", order=1, correct=("x",))
    with pytest.raises(InvalidInput, match="True or False"):
        add(assessment, prompt="p", kind="true_false", order=1, correct=(1,))
    with pytest.raises(NotFound):
        add(ids.new_reference_id(), prompt="p", kind="essay", order=1)
    assert clean.assessments.get(assessment).questions == ()

    add(assessment, prompt="Explain", kind="essay", order=1, points=5)
    with pytest.raises(Duplicate, match="order 1"):
        add(assessment, prompt="Again", kind="essay", order=1)
    clean.assessments.publish(assessment)
    clean.assessments.publish(assessment)  # idempotent
    with pytest.raises(InvalidState, match="frozen"):
        add(assessment, prompt="Late", kind="essay", order=2)
    assert rows_per_shard(
        clean, select(func.count()).select_from(AssessmentQuestion)
    ) == dict.fromkeys(clean.router.shards, 1)


def test_the_database_refuses_a_key_the_python_checks_would_let_through(clean: Database) -> None:
    """The SQL function is the last line: a direct call with a bad key is refused there too."""
    course, _ = published_course(clean)
    assessment = clean.assessments.create(course, title="Quiz")
    with clean.writer("eu") as uow, pytest.raises(InvalidInput, match="not among the options"):
        uow.execute(
            text(
                "SELECT add_assessment_question(:id, :a, 1, 'multiple_choice', 'p', 1,"
                " '[\"a\", \"b\"]'::jsonb, '[0, 7]'::jsonb)"
            ),
            {"id": ids.new_reference_id(), "a": assessment},
        )


# -------------------------------------------------------------------- attempts


def test_a_learner_of_another_region_takes_a_quiz_graded_automatically(clean: Database) -> None:
    course, _, enrollment, _ = course_with_learner(clean, learner_region="asia")
    assessment, q = quiz(clean, course)
    attempt = clean.assessments.start(enrollment, assessment)
    assert ids.owner_region(attempt) is ids.owner_region(enrollment)
    clean.assessments.answer(attempt, q["single"], 1)
    clean.assessments.answer(attempt, q["multiple"], [0])  # half right: no points
    clean.assessments.answer(attempt, q["multiple"], [2, 0])  # answering again replaces
    clean.assessments.answer(attempt, q["true_false"], False)
    clean.assessments.answer(attempt, q["short"], "  new   YORK ")
    result = clean.assessments.submit(attempt)
    assert isinstance(result, AttemptView)
    assert (result.status, result.score, result.max_score, result.percent, result.passed) == (
        "graded", Decimal("4.00"), Decimal("4.00"), Decimal("100.00"), True,
    )  # fmt: skip
    assert result.number == 1 and result.submitted_at is not None
    # The attempt and its answers exist on the learner's shard only.
    counts = rows_per_shard(clean, select(func.count()).select_from(AttemptAnswer))
    learner_shard = clean.router.shard_of_owner(enrollment)
    assert counts == {s: (4 if s == learner_shard else 0) for s in clean.router.shards}

    second = clean.assessments.start(enrollment, assessment)
    clean.assessments.answer(second, q["single"], 0)
    clean.assessments.answer(second, q["multiple"], [0])
    clean.assessments.answer(second, q["short"], "Boston")
    failed = clean.assessments.submit(second)  # true_false left unanswered: 0
    assert (failed.score, failed.percent, failed.passed, failed.number) == (
        Decimal("0.00"), Decimal("0.00"), False, 2,
    )  # fmt: skip
    history = clean.assessments.attempts(enrollment)
    assert [a.id for a in history] == [second, attempt]
    assert clean.assessments.attempts(enrollment, assessment) == history


def test_attempt_rules_limit_open_attempt_publication_and_drop(clean: Database) -> None:
    course, _, enrollment, _ = course_with_learner(clean)
    draft, _ = quiz(clean, course, publish=False)
    with pytest.raises(InvalidState, match="not published"):
        clean.assessments.start(enrollment, draft)
    assessment, q = quiz(clean, course, max_attempts=2)
    first = clean.assessments.start(enrollment, assessment)
    with pytest.raises(InvalidState, match="still open"):
        clean.assessments.start(enrollment, assessment)
    clean.assessments.submit(first)
    with pytest.raises(InvalidState, match="already submitted"):
        clean.assessments.submit(first)
    with pytest.raises(InvalidState, match="answers are closed"):
        clean.assessments.answer(first, q["single"], 1)
    clean.assessments.submit(clean.assessments.start(enrollment, assessment))
    with pytest.raises(InvalidState, match=r"no attempts left.*2 of 2"):
        clean.assessments.start(enrollment, assessment)
    assert len(clean.assessments.attempts(enrollment, assessment)) == 2

    other_course, _ = published_course(clean)
    foreign, _ = quiz(clean, other_course)
    with pytest.raises(InvalidInput, match="not part of course"):
        clean.assessments.start(enrollment, foreign)
    with pytest.raises(NotFound):
        clean.assessments.start(enrollment, ids.new_reference_id())
    with pytest.raises(NotFound):
        clean.assessments.start(ids.new_id(ids.owner_region(enrollment)), assessment)
    with pytest.raises(NotFound):
        clean.assessments.submit(uuid.uuid4())
    clean.enrollments.drop(enrollment)
    later, _ = quiz(clean, course)
    with pytest.raises(InvalidState, match="dropped"):
        clean.assessments.start(enrollment, later)


def test_answers_of_the_wrong_shape_and_after_the_time_limit_are_refused(clean: Database) -> None:
    course, _, enrollment, _ = course_with_learner(clean, learner_region="north_america")
    assessment, q = quiz(clean, course, time_limit_minutes=10)
    attempt = clean.assessments.start(enrollment, assessment)
    assert clean.assessments.attempt(attempt).deadline_at is not None
    with pytest.raises(InvalidInput, match="option index"):
        clean.assessments.answer(attempt, q["single"], 3)
    with pytest.raises(InvalidInput, match="single-choice"):
        clean.assessments.answer(attempt, q["single"], True)
    with pytest.raises(InvalidInput, match="true or false"):
        clean.assessments.answer(attempt, q["true_false"], "yes")
    with pytest.raises(InvalidInput, match="distinct option indexes"):
        clean.assessments.answer(attempt, q["multiple"], [1, 1])
    with pytest.raises(InvalidInput, match="response"):
        clean.assessments.answer(attempt, q["short"], {"text": "x"})
    other, _ = quiz(clean, course)
    other_question = clean.assessments.get(other).questions[0].id
    with pytest.raises(InvalidInput, match="not part of assessment"):
        clean.assessments.answer(attempt, other_question, 1)
    with pytest.raises(NotFound):
        clean.assessments.answer(attempt, ids.new_reference_id(), 1)
    clean.assessments.answer(attempt, q["single"], 1)

    # The clock moves on: the attempt started 11 minutes ago.
    shard = clean.router.shard_of_owner(attempt)
    past = datetime.now(UTC) - timedelta(minutes=11)
    with clean.writer(shard) as uow:
        uow.execute(
            update(AssessmentAttempt)
            .where(AssessmentAttempt.id == attempt)
            .values(started_at=past, deadline_at=past + timedelta(minutes=10)),
            shard=shard,
        )
    with pytest.raises(InvalidState, match="time limit"):
        clean.assessments.answer(attempt, q["single"], 0)
    result = clean.assessments.submit(attempt)  # late submission keeps what came in time
    assert (result.score, result.passed) == (Decimal("1.00"), False)


def test_essays_wait_for_the_courses_instructor(clean: Database) -> None:
    course, _, enrollment, instructor = course_with_learner(clean, learner_region="africa")
    assessment = clean.assessments.create(course, title="Assignment", kind="assignment")
    essay = clean.assessments.add_question(
        assessment, prompt="Discuss.", kind="essay", order=1, points=8
    )
    truth = clean.assessments.add_question(
        assessment, prompt="True?", kind="true_false", order=2, points=2, correct=True
    )
    clean.assessments.publish(assessment)
    attempt = clean.assessments.start(enrollment, assessment)
    clean.assessments.answer(attempt, essay, "A long essay.")
    clean.assessments.answer(attempt, truth, True)
    with pytest.raises(InvalidState, match="not submitted"):
        clean.assessments.grade(attempt, essay, points=5, grader_id=instructor)
    waiting = clean.assessments.submit(attempt)
    assert (waiting.status, waiting.score, waiting.passed) == ("submitted", Decimal("2.00"), None)
    stranger = register(clean, "europe", role="instructor")
    with pytest.raises(InvalidState, match="not the instructor"):
        clean.assessments.grade(attempt, essay, points=5, grader_id=stranger)
    with pytest.raises(InvalidInput, match="between 0 and 8"):
        clean.assessments.grade(attempt, essay, points=9, grader_id=instructor)
    with pytest.raises(InvalidInput):
        clean.assessments.grade(attempt, essay, points=-1, grader_id=instructor)
    graded = clean.assessments.grade(
        attempt, essay, points=Decimal("5.5"), grader_id=instructor, feedback="Good."
    )
    assert (graded.status, graded.score, graded.percent, graded.passed) == (
        "graded", Decimal("7.50"), Decimal("75.00"), True,
    )  # fmt: skip
    # An override of an automatic grade rescores too.
    lowered = clean.assessments.grade(attempt, truth, points=0, grader_id=instructor)
    assert (lowered.score, lowered.passed) == (Decimal("5.50"), False)


# ------------------------------------------------------------------ completion


def test_completion_needs_every_lesson_and_every_required_assessment(clean: Database) -> None:
    course, lessons, enrollment, instructor = course_with_learner(clean, learner_region="asia")
    assessment, q = quiz(clean, course)
    optional, _ = quiz(clean, course, required=False)
    for lesson in lessons:
        progress = clean.enrollments.complete_lesson(enrollment, lesson)
    assert progress.status == "active"  # every lesson done, the quiz not passed yet
    attempt = clean.assessments.start(enrollment, assessment)
    clean.assessments.answer(attempt, q["single"], 0)
    assert clean.assessments.submit(attempt).passed is False
    assert clean.enrollments.get(enrollment).status == "active"

    attempt = clean.assessments.start(enrollment, assessment)
    for key, response in (("single", 1), ("multiple", [0, 2]), ("true_false", False)):
        clean.assessments.answer(attempt, q[key], response)
    assert clean.assessments.submit(attempt).percent == Decimal("75.00")
    done = clean.enrollments.get(enrollment)
    assert (done.status, done.completed_at is not None) == ("completed", True)
    assert optional  # an optional assessment never holds completion back

    # A lesson reset reverts; completing it again completes again (the quiz is passed).
    assert clean.enrollments.reset_lesson(enrollment, lessons[0]).status == "active"
    assert clean.enrollments.complete_lesson(enrollment, lessons[0]).status == "completed"
    # A regrade that fails the attempt reverts, too.
    clean.assessments.grade(attempt, q["multiple"], points=0, grader_id=instructor)
    assert clean.enrollments.get(enrollment).status == "active"
    clean.assessments.grade(attempt, q["multiple"], points=1, grader_id=instructor)
    assert clean.enrollments.get(enrollment).status == "completed"


def test_a_new_required_assessment_reverts_completed_enrollments_in_every_region(
    clean: Database,
) -> None:
    course, lessons = published_course(clean, instructor_region="europe", lessons=1)
    enrollments = []
    for region in ("north_america", "europe", "oceania"):
        enrollment = clean.enrollments.enroll(register(clean, region), course)
        clean.enrollments.complete_lesson(enrollment, lessons[0])
        enrollments.append(enrollment)
    assert {clean.router.shard_of_owner(e) for e in enrollments} == set(clean.router.shards)
    assert {clean.enrollments.get(e).status for e in enrollments} == {"completed"}
    optional, _ = quiz(clean, course, required=False)
    assert {clean.enrollments.get(e).status for e in enrollments} == {"completed"}
    draft, q = quiz(clean, course, publish=False)
    assert {clean.enrollments.get(e).status for e in enrollments} == {"completed"}
    clean.assessments.publish(draft)
    assert {clean.enrollments.get(e).status for e in enrollments} == {"active"}
    assert all(clean.enrollments.get(e).completed_at is None for e in enrollments)
    passer = enrollments[1]
    attempt = clean.assessments.start(passer, draft)
    for key, response in (("single", 1), ("multiple", [0, 2]), ("true_false", False)):
        clean.assessments.answer(attempt, q[key], response)
    clean.assessments.submit(attempt)
    assert [clean.enrollments.get(e).status for e in enrollments] == [
        "active", "completed", "active",
    ]  # fmt: skip
    assert optional


# ---------------------------------------------------------------------- races


def test_eight_concurrent_submits_grade_an_attempt_once(clean: Database) -> None:
    course, _, enrollment, _ = course_with_learner(clean, learner_region="south_america")
    assessment, q = quiz(clean, course)
    attempt = clean.assessments.start(enrollment, assessment)
    clean.assessments.answer(attempt, q["single"], 1)
    clean.assessments.answer(attempt, q["true_false"], False)
    barrier = threading.Barrier(8)
    outcomes: list[object] = [None] * 8

    def submit(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = clean.assessments.submit(attempt)
        except Exception as exc:  # collected for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"AttemptView": 1, "InvalidState": 7}, outcomes
    (view,) = [o for o in outcomes if isinstance(o, AttemptView)]
    assert (view.score, view.status) == (Decimal("2.00"), "graded")
    assert clean.assessments.attempt(attempt).submitted_at == view.submitted_at
    counts = rows_per_shard(clean, select(func.count()).select_from(AttemptAnswer))
    assert sum(counts.values()) == 4  # the unanswered two recorded once, not eight times


def test_concurrent_starts_open_one_attempt(clean: Database) -> None:
    course, _, enrollment, _ = course_with_learner(clean, learner_region="europe")
    assessment, _ = quiz(clean, course)
    barrier = threading.Barrier(8)
    outcomes: list[object] = [None] * 8

    def start(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = clean.assessments.start(enrollment, assessment)
        except Exception as exc:  # collected for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"UUID": 1, "InvalidState": 7}, outcomes
    assert len(clean.assessments.attempts(enrollment)) == 1


# ------------------------------------------------------------ content, gradebook


def test_a_quiz_document_becomes_a_published_assessment_once(clean: Database) -> None:
    course, lessons = published_course(clean)
    clean.content.add_quiz(
        content_id="quiz-intro",
        course_id=course,
        lesson_id=lessons[0],
        title="Intro quiz",
        questions=[
            {"question": "1 + 1?", "options": ["1", "2"], "correct_option": 1, "points": 2},
            {"question": "Blue is a colour?", "options": ["no", "yes"], "correct_option": 1},
        ],
    )
    assessment = clean.assessments.from_quiz_content("quiz-intro", passing_percent=50)
    assert clean.assessments.from_quiz_content("quiz-intro") == assessment
    view = clean.assessments.get(assessment)
    assert (view.title, view.status, view.lesson_id, view.total_points) == (
        "Intro quiz", "published", lessons[0], Decimal("3.00"),
    )  # fmt: skip
    assert [(q.kind, q.prompt, q.options) for q in view.questions] == [
        ("single_choice", "1 + 1?", ("1", "2")),
        ("single_choice", "Blue is a colour?", ("no", "yes")),
    ]
    assert len(clean.assessments.for_course(course)) == 1
    clean.content.add_video(
        content_id="video-1", course_id=course, lesson_id=lessons[1], title="Video",
        video_url="https://videos.example.com/1.mp4", duration_seconds=60,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="not a quiz"):
        clean.assessments.from_quiz_content("video-1")
    with pytest.raises(NotFound):
        clean.assessments.from_quiz_content("no-such-quiz")
    clean.content.add_quiz(
        content_id="quiz-free", course_id=course, lesson_id=lessons[1], title="Free points",
        questions=[{"question": "Q", "options": ["a", "b"], "correct_option": 0, "points": 0}],
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="0 points"):
        clean.assessments.from_quiz_content("quiz-free")
    assert len(clean.assessments.for_course(course)) == 1


def test_the_gradebook_has_one_row_per_enrollment_from_every_shard(clean: Database) -> None:
    course, lessons = published_course(clean, instructor_region="europe", lessons=1)
    assessment, q = quiz(clean, course)
    optional, _ = quiz(clean, course, required=False)
    learners = {}
    for region in ("north_america", "europe", "asia"):
        learners[region] = clean.enrollments.enroll(register(clean, region), course)
    passer = learners["asia"]
    clean.enrollments.complete_lesson(passer, lessons[0])
    for percent_answers in (
        (("single", 1),),
        (("single", 1), ("multiple", [0, 2]), ("short", "albany")),
    ):
        attempt = clean.assessments.start(passer, assessment)
        for key, response in percent_answers:
            clean.assessments.answer(attempt, q[key], response)
        clean.assessments.submit(attempt)
    failer = learners["north_america"]
    attempt = clean.assessments.start(failer, assessment)
    clean.assessments.submit(attempt)

    book = clean.analytics.gradebook(course)
    assert len(book) == 3
    assert set(book["enrollment_id"]) == set(learners.values())
    by_id = book.set_index("enrollment_id")
    column = book.attrs["assessments"][assessment]
    assert by_id.loc[passer, column] == Decimal("75.00")
    assert by_id.loc[failer, column] == Decimal("0.00")
    assert by_id.loc[learners["europe"], column] is None
    assert bool(by_id.loc[passer, "passed"]) is True
    assert not by_id.loc[failer, "passed"]
    assert (by_id.loc[passer, "status"], by_id.loc[passer, "completion"]) == (
        "completed", Decimal("100.00"),
    )  # fmt: skip
    assert by_id.loc[passer, "attempts"] == 2
    assert optional in book.attrs["assessments"]
    with pytest.raises(NotFound):
        clean.analytics.gradebook(ids.new_reference_id())


def test_concurrent_imports_of_one_quiz_document_make_one_assessment(clean: Database) -> None:
    course, lessons = published_course(clean)
    clean.content.add_quiz(
        content_id="quiz-race",
        course_id=course,
        lesson_id=lessons[0],
        title="Race quiz",
        questions=[{"question": "1 + 1?", "options": ["1", "2"], "correct_option": 1}],
    )
    barrier = threading.Barrier(4)
    outcomes: list[object] = [None] * 4

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = clean.assessments.from_quiz_content("quiz-race")
        except Exception as exc:  # collected for the assertions
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(o, uuid.UUID) for o in outcomes), outcomes
    assert len(set(outcomes)) == 1
    assert len(clean.assessments.for_course(course)) == 1
