"""``db.assessments``: quizzes, assignments and exams -- catalog definitions, learners' attempts.

Placement: an assessment and its questions are catalog (reference) data,
written to every shard in one two-phase commit like the course itself; an
attempt and its answers belong to the learner and live on the learner's home
shard, so taking any course's assessment from any region writes to one shard.

Grading happens in the database (``submit_assessment_attempt``): single and
multiple choice all-or-nothing, true/false, short answers case- and
space-insensitively; essays wait for the course's instructor
(``grade_assessment_answer``). An enrollment completes when every lesson is
done and every published required assessment has a passed attempt, and reverts
when that stops being true (triggers of revision 0008).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from elearn_data import ids, validation
from elearn_data.errors import Duplicate, InvalidInput
from elearn_data.models.assessments import ASSESSMENT_KINDS, QUESTION_KINDS
from elearn_data.repositories.assessments import AssessmentRepository
from elearn_data.repositories.views import AssessmentView, AttemptView
from elearn_data.services.base import ContentSource, Units
from elearn_data.services.catalog import catalog_id
from elearn_data.services.learning import owned_id
from elearn_data.sharding.routing import Router
from elearn_data.sharding.unit_of_work import UnitOfWork

CHOICE_KINDS = ("single_choice", "multiple_choice")
MAX_OPTIONS = 50
MAX_POINTS = Decimal("10000")
MAX_SHORT_ANSWER = 500
MAX_ESSAY = 20000


def _now() -> datetime:
    return datetime.now(UTC)


def _number(name: str, value: object) -> Decimal:
    """Return a finite number with at most two decimals (bool and float-junk refused)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidInput(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidInput(f"{name} must be finite: {value!r}")
    try:
        exact = number == number.quantize(Decimal("0.01"))
    except InvalidOperation:
        raise InvalidInput(f"{name} is out of range: {value!r}") from None
    if not exact:
        raise InvalidInput(f"{name} has more than two decimals: {value!r}")
    return number


def _percent(value: object) -> Decimal:
    percent = _number("passing_percent", value)
    if not Decimal(0) <= percent <= Decimal(100):
        raise InvalidInput(f"passing_percent must be between 0 and 100: {value!r}")
    return percent


def _points(value: object) -> Decimal:
    points = _number("points", value)
    if points <= 0 or points > MAX_POINTS:
        raise InvalidInput(f"points must be above 0 and at most {MAX_POINTS}: {value!r}")
    return points


def _sequence(name: str, value: object) -> list[Any]:
    """Return a list from a list/tuple (a single scalar becomes a one-item list)."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str | int | bool):
        return [value]
    raise InvalidInput(f"{name} must be a list, not {type(value).__name__}")


def _index(value: object, count: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def question_key(kind: str, options: object, correct: object) -> tuple[list[str], list[Any]]:
    """Check a question's options and answer key; return them as JSON-ready lists.

    Raises:
        InvalidInput: options for a kind without options (or too few), a correct
            answer not among the options, a key of the wrong shape for the kind.
    """
    if isinstance(options, str):
        raise InvalidInput("options must be a list of texts, not one text")
    option_list = _sequence("options", options)
    key = _sequence("correct", correct)
    texts = [validation.required_text("option", o, max_length=1000) for o in option_list]
    if kind in CHOICE_KINDS:
        if not 2 <= len(texts) <= MAX_OPTIONS:
            raise InvalidInput(
                f"a {kind} question needs 2 to {MAX_OPTIONS} options, not {len(texts)}"
            )
        for answer in key:
            if not _index(answer, len(texts)):
                raise InvalidInput(
                    f"correct answer {answer!r} is not among the options "
                    f"(option indexes 0 to {len(texts) - 1})"
                )
        if len(set(key)) != len(key):
            raise InvalidInput(f"correct options repeat: {key!r}")
        if kind == "single_choice" and len(key) != 1:
            raise InvalidInput(f"a single_choice question has exactly one correct option: {key!r}")
        if not key:
            raise InvalidInput("a multiple_choice question needs at least one correct option")
        return texts, sorted(key)
    if texts:
        raise InvalidInput(f"a {kind} question takes no options")
    if kind == "true_false":
        if len(key) != 1 or not isinstance(key[0], bool):
            raise InvalidInput(f"a true_false question has one answer, True or False: {key!r}")
    elif kind == "short_answer":
        if not key:
            raise InvalidInput("a short_answer question needs at least one accepted answer")
        key = [
            validation.required_text("correct", answer, max_length=MAX_SHORT_ANSWER)
            for answer in key
        ]
    elif key:
        raise InvalidInput("an essay has no answer key: it is graded by hand")
    return [], key


def _response(value: object) -> object:
    """Check the shape of a response (the database checks it against the question's kind)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not 0 <= value < MAX_OPTIONS:
            raise InvalidInput(f"an option index must be from 0 to {MAX_OPTIONS - 1}: {value}")
        return value
    if isinstance(value, str):
        return validation.text("response", value, max_length=MAX_ESSAY, strip=False)
    if isinstance(value, list | tuple | set | frozenset):
        chosen = list(value)
        if not all(_index(v, MAX_OPTIONS) for v in chosen):
            raise InvalidInput(f"a multiple-choice response is a list of option indexes: {value!r}")
        return sorted(chosen)
    raise InvalidInput(
        "a response is an option index, a list of them, True/False or a text, "
        f"not {type(value).__name__}"
    )


class Assessments:
    """The assessments part of the API (see API.md, "Assessments").

    Args:
        units: runs each call as one unit of work.
        router: names a learner's shard.
        content: the content store, whose quizzes ``from_quiz_content`` reads.
    """

    def __init__(self, units: Units, router: Router, *, content: ContentSource) -> None:
        self._units = units
        self._router = router
        self._content = content

    def _shard(self, owned: uuid.UUID) -> str:
        return self._router.shard_of_owner(owned)

    # ------------------------------------------------------------ definitions

    def create(
        self,
        course_id: uuid.UUID,
        *,
        title: str,
        kind: str = "quiz",
        passing_percent: Decimal | int = Decimal("60"),
        max_attempts: int | None = None,
        time_limit_minutes: int | None = None,
        required: bool = True,
        lesson_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Create a draft assessment of a course on every shard; return its id.

        Raises:
            NotFound: no such course (or lesson).
            InvalidInput: unknown kind, passing percent outside 0..100, attempts or
                time limit below 1, a lesson of another course.
            InvalidState: the course is archived.
        """
        values = self._values(
            course_id,
            title=title,
            kind=kind,
            passing_percent=passing_percent,
            max_attempts=max_attempts,
            time_limit_minutes=time_limit_minutes,
            required=required,
            lesson_id=lesson_id,
        )
        at = _now()
        self._units.write(None, lambda uow: AssessmentRepository(uow).create(values, at))
        return uuid.UUID(str(values["id"]))

    def _values(
        self,
        course_id: uuid.UUID,
        *,
        title: str,
        kind: str,
        passing_percent: object,
        max_attempts: object,
        time_limit_minutes: object,
        required: object,
        lesson_id: object,
        source_content_id: str | None = None,
    ) -> dict[str, Any]:
        course = catalog_id("course_id", course_id)
        return {
            "id": ids.new_reference_id(),
            "course_id": course,
            "title": validation.required_text("title", title, max_length=200),
            "kind": validation.choice("kind", kind, ASSESSMENT_KINDS),
            "passing_percent": _percent(passing_percent),
            "max_attempts": validation.integer(
                "max_attempts", max_attempts, minimum=1, maximum=1000, required=False
            ),
            "time_limit_minutes": validation.integer(
                "time_limit_minutes", time_limit_minutes, minimum=1, maximum=100_000, required=False
            ),
            "required": validation.flag("required", required),
            "lesson_id": None if lesson_id is None else catalog_id("lesson_id", lesson_id),
            "source_content_id": source_content_id,
        }

    def add_question(
        self,
        assessment_id: uuid.UUID,
        *,
        prompt: str,
        kind: str,
        order: int,
        points: Decimal | int = 1,
        options: Sequence[str] = (),
        correct: Sequence[Any] | Any = (),
    ) -> uuid.UUID:
        """Add a question to a draft assessment on every shard; return its id.

        ``options`` are the texts of a choice question's options; ``correct`` is
        the answer key: option indexes (single_choice: one; multiple_choice: all
        the right ones), True/False (true_false), accepted texts (short_answer),
        nothing (essay).

        Raises:
            NotFound: no such assessment.
            Duplicate: the assessment has a question with this order.
            InvalidInput: unknown kind, points <= 0, a correct answer not among the
                options, a key of the wrong shape.
            InvalidState: the assessment is published (its questions are frozen).
        """
        values = self._question_values(
            assessment_id,
            prompt=prompt,
            kind=kind,
            order=order,
            points=points,
            options=options,
            correct=correct,
        )
        at = _now()
        self._units.write(None, lambda uow: AssessmentRepository(uow).add_question(values, at))
        return uuid.UUID(str(values["id"]))

    @staticmethod
    def _question_values(
        assessment_id: uuid.UUID,
        *,
        prompt: str,
        kind: str,
        order: int,
        points: object,
        options: object,
        correct: object,
    ) -> dict[str, Any]:
        clean_kind = validation.choice("kind", kind, QUESTION_KINDS)
        texts, key = question_key(clean_kind, options, correct)
        return {
            "id": ids.new_reference_id(),
            "assessment_id": catalog_id("assessment_id", assessment_id),
            "prompt": validation.required_text("prompt", prompt, max_length=5000),
            "kind": clean_kind,
            "order": validation.required_integer("order", order, minimum=1, maximum=100_000),
            "points": _points(points),
            "options": texts,
            "correct": key,
        }

    def publish(self, assessment_id: uuid.UUID) -> None:
        """Publish an assessment on every shard (idempotent).

        A required assessment published on a course reverts the course's
        completed enrollments, in every region, in the same commit.

        Raises:
            NotFound: no such assessment.
            InvalidState: it has no questions.
        """
        aid = catalog_id("assessment_id", assessment_id)
        at = _now()
        self._units.write(None, lambda uow: AssessmentRepository(uow).publish(aid, at))

    def from_quiz_content(
        self,
        content_id: str,
        *,
        passing_percent: Decimal | int = Decimal("60"),
        max_attempts: int | None = None,
        time_limit_minutes: int | None = None,
        required: bool = True,
        publish: bool = True,
    ) -> uuid.UUID:
        """Turn a MongoDB quiz document into an assessment of its course; return its id.

        Each quiz question becomes a single_choice question (its options, its
        correct option, its points), in the document's order; the assessment is
        linked to the quiz's lesson, titled like the quiz, and published unless
        ``publish`` is False -- all in one two-phase commit. The quiz stays the
        one source: calling again for the same document returns the same
        assessment.

        Raises:
            NotFound: no content with this id (or its course is gone).
            InvalidInput: the content is not a quiz, or a question is unusable
                (fewer than two options, points <= 0, a correct option outside them).
        """
        key = validation.required_text("content_id", content_id, max_length=128)
        quiz = self._content.content_store.content.get(key)
        if quiz.content_type != "quiz":
            raise InvalidInput(f"content {key!r} is a {quiz.content_type}, not a quiz")
        values = self._values(
            quiz.course_id,
            title=quiz.title[:200],
            kind="quiz",
            passing_percent=passing_percent,
            max_attempts=max_attempts,
            time_limit_minutes=time_limit_minutes,
            required=required,
            lesson_id=quiz.lesson_id,
            source_content_id=key,
        )
        questions = []
        for order, item in enumerate(quiz.questions, start=1):
            if item.points <= 0:
                raise InvalidInput(
                    f"question {order} of quiz {key!r} is worth {item.points} points; "
                    "an assessment question needs more than 0"
                )
            questions.append(
                self._question_values(
                    values["id"],
                    prompt=item.question,
                    kind="single_choice",
                    order=order,
                    points=item.points,
                    options=item.options,
                    correct=(item.correct_option,),
                )
            )
        at = _now()

        def work(uow: UnitOfWork) -> uuid.UUID:
            repo = AssessmentRepository(uow)
            existing = repo.by_source(key)
            if existing is not None:
                return existing
            repo.create(values, at)
            for question in questions:
                repo.add_question(question, at)
            if publish:
                repo.publish(values["id"], at)
            return uuid.UUID(str(values["id"]))

        try:
            return self._units.write(None, work)
        except Duplicate as exc:
            # A concurrent call for the same document won the unique source index.
            if exc.constraint != "uq_assessments_source_content_id":
                raise
            # Read on the primary: the winner committed before this call lost, but
            # its thread may not have published its causal token yet.
            found = self._units.write(None, lambda uow: AssessmentRepository(uow).by_source(key))
            if found is None:  # pragma: no cover - the winner committed before we lost
                raise
            return found

    # ------------------------------------------------------------------ reads

    def get(self, assessment_id: uuid.UUID) -> AssessmentView:
        """Return an assessment with its questions (never their answer key).

        Raises:
            NotFound: no such assessment.
        """
        aid = catalog_id("assessment_id", assessment_id)
        with self._units.reader() as uow:
            return AssessmentRepository(uow).get(aid)

    def for_course(self, course_id: uuid.UUID) -> list[AssessmentView]:
        """Return a course's assessments (drafts included), oldest first."""
        course = catalog_id("course_id", course_id)
        with self._units.reader() as uow:
            return AssessmentRepository(uow).for_course(course)

    # --------------------------------------------------------------- attempts

    def start(self, enrollment_id: uuid.UUID, assessment_id: uuid.UUID) -> uuid.UUID:
        """Open an attempt of an enrollment at an assessment of its course; return its id.

        Raises:
            NotFound: no such enrollment or assessment.
            InvalidInput: the assessment belongs to another course.
            InvalidState: not published, enrollment dropped, no attempts left, or
                another attempt is open.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        aid = catalog_id("assessment_id", assessment_id)
        attempt_id = ids.new_id(ids.owner_region(eid))
        self._units.write(
            self._shard(eid), lambda uow: AssessmentRepository(uow).start(attempt_id, eid, aid)
        )
        return attempt_id

    def answer(self, attempt_id: uuid.UUID, question_id: uuid.UUID, response: object) -> None:
        """Record the response to a question (answering again replaces it).

        ``response``: an option index (single_choice), a list of them
        (multiple_choice), True/False (true_false), a text (short_answer, essay).

        Raises:
            NotFound: no such attempt or question.
            InvalidInput: a response of the wrong shape for the question, or a
                question of another assessment.
            InvalidState: the attempt is submitted, or past its time limit.
        """
        tid = owned_id("attempt_id", attempt_id)
        qid = catalog_id("question_id", question_id)
        clean = _response(response)
        self._units.write(
            self._shard(tid), lambda uow: AssessmentRepository(uow).answer(tid, qid, clean)
        )

    def submit(self, attempt_id: uuid.UUID) -> AttemptView:
        """Submit an attempt and grade its objective questions; return it.

        ``status`` is ``graded`` (``passed`` decided) or ``submitted`` while
        essays wait for the instructor (``passed`` None).

        Raises:
            NotFound: no such attempt.
            InvalidState: already submitted (of concurrent submits, one grades).
        """
        tid = owned_id("attempt_id", attempt_id)
        return self._units.write(
            self._shard(tid), lambda uow: AssessmentRepository(uow).submit(tid)
        )

    def grade(
        self,
        attempt_id: uuid.UUID,
        question_id: uuid.UUID,
        *,
        points: Decimal | int,
        grader_id: uuid.UUID,
        feedback: str | None = None,
    ) -> AttemptView:
        """Grade one answer by hand (an essay, or an override); return the rescored attempt.

        Raises:
            NotFound: no such attempt or question.
            InvalidInput: points outside 0..the question's points.
            InvalidState: the attempt is not submitted, or the grader is not the
                course's instructor.
        """
        tid = owned_id("attempt_id", attempt_id)
        qid = catalog_id("question_id", question_id)
        amount = _number("points", points)
        if amount < 0:
            raise InvalidInput(f"points must not be negative: {points!r}")
        grader = validation.identifier("grader_id", grader_id)
        note = validation.text("feedback", feedback, max_length=5000, required=False, strip=False)
        return self._units.write(
            self._shard(tid),
            lambda uow: AssessmentRepository(uow).grade(tid, qid, amount, grader, note),
        )

    def attempts(
        self, enrollment_id: uuid.UUID, assessment_id: uuid.UUID | None = None
    ) -> list[AttemptView]:
        """Return an enrollment's attempts (optionally at one assessment), newest first.

        Raises:
            NotFound: no such enrollment.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        aid = None if assessment_id is None else catalog_id("assessment_id", assessment_id)
        with self._units.reader(self._shard(eid)) as uow:
            return AssessmentRepository(uow).attempts(eid, aid)

    def attempt(self, attempt_id: uuid.UUID) -> AttemptView:
        """Return one attempt. Raises NotFound."""
        tid = owned_id("attempt_id", attempt_id)
        with self._units.reader(self._shard(tid)) as uow:
            return AssessmentRepository(uow).attempt(tid)
