"""Assessments: definitions on every shard (catalog writes), attempts on the learner's shard.

Definitions (``assessments``, ``assessment_questions``) are reference rows: each
write runs the same PL/pgSQL function with the same ids and timestamp on every
shard, in sorted shard order, and the unit of work commits them with two-phase
commit -- the catalog writer's protocol. Attempts and answers are learner-owned:
every call touches the learner's shard only (the assessment it names is a local
catalog row there).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB

from elearn_data.errors import NotFound
from elearn_data.models import Assessment, AssessmentAttempt, AssessmentQuestion, Enrollment
from elearn_data.repositories.views import AssessmentView, AttemptView, QuestionView
from elearn_data.sharding.unit_of_work import UnitOfWork

_CREATE = text(
    "SELECT create_assessment(:id, :course_id, :title, :kind, :passing_percent, :max_attempts,"
    " :time_limit_minutes, :required, :lesson_id, :source_content_id, :at)"
)
_ADD_QUESTION = text(
    "SELECT add_assessment_question(:id, :assessment_id, :order, :kind, :prompt, :points,"
    " :options, :correct, :at)"
).bindparams(bindparam("options", type_=JSONB), bindparam("correct", type_=JSONB))
_PUBLISH = text("SELECT publish_assessment(:assessment_id, :at)")
_START = text("SELECT start_assessment_attempt(:attempt_id, :enrollment_id, :assessment_id)")
_ANSWER = text(
    "SELECT answer_assessment_question(:attempt_id, :question_id, :response)"
).bindparams(bindparam("response", type_=JSONB))
_SUBMIT = text("SELECT submit_assessment_attempt(:attempt_id)")
_GRADE = text(
    "SELECT grade_assessment_answer(:attempt_id, :question_id, :points, :grader_id, :feedback)"
)

_ASSESSMENT_COLUMNS = (
    Assessment.id,
    Assessment.course_id,
    Assessment.lesson_id,
    Assessment.title,
    Assessment.kind,
    Assessment.passing_percent,
    Assessment.max_attempts,
    Assessment.time_limit_minutes,
    Assessment.required,
    Assessment.status,
    Assessment.total_points,
    Assessment.published_at,
)
# Never the answer key (``correct``): views are what learners see.
_QUESTION_COLUMNS = (
    AssessmentQuestion.id,
    AssessmentQuestion.assessment_id,
    AssessmentQuestion.question_order,
    AssessmentQuestion.kind,
    AssessmentQuestion.prompt,
    AssessmentQuestion.points,
    AssessmentQuestion.options,
)
_ATTEMPT_COLUMNS = (
    AssessmentAttempt.id,
    AssessmentAttempt.enrollment_id,
    AssessmentAttempt.assessment_id,
    AssessmentAttempt.attempt_number,
    AssessmentAttempt.status,
    AssessmentAttempt.score,
    AssessmentAttempt.max_score,
    AssessmentAttempt.percent,
    AssessmentAttempt.passed,
    AssessmentAttempt.started_at,
    AssessmentAttempt.submitted_at,
    AssessmentAttempt.deadline_at,
    AssessmentAttempt.graded_at,
)


def _question(row: Mapping[Any, Any]) -> QuestionView:
    return QuestionView(
        id=row["id"],
        order=row["question_order"],
        kind=row["kind"],
        prompt=row["prompt"],
        points=row["points"],
        options=tuple(str(o) for o in row["options"]),
    )


def _assessment(row: Mapping[Any, Any], questions: tuple[QuestionView, ...]) -> AssessmentView:
    return AssessmentView(
        id=row["id"],
        course_id=row["course_id"],
        title=row["title"],
        kind=row["kind"],
        passing_percent=row["passing_percent"],
        max_attempts=row["max_attempts"],
        time_limit_minutes=row["time_limit_minutes"],
        required=row["required"],
        status=row["status"],
        questions=questions,
        lesson_id=row["lesson_id"],
        total_points=row["total_points"],
        published_at=row["published_at"],
    )


def attempt_view(row: Mapping[Any, Any]) -> AttemptView:
    """Return the view of an ``assessment_attempts`` row."""
    return AttemptView(
        id=row["id"],
        enrollment_id=row["enrollment_id"],
        assessment_id=row["assessment_id"],
        number=row["attempt_number"],
        status=row["status"],
        score=row["score"],
        max_score=row["max_score"],
        percent=row["percent"],
        passed=row["passed"],
        started_at=row["started_at"],
        submitted_at=row["submitted_at"],
        deadline_at=row["deadline_at"],
        graded_at=row["graded_at"],
    )


class AssessmentRepository:
    """Assessment definitions and attempts inside one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def _everywhere(self, statement: Any, params: Mapping[str, Any]) -> None:
        for shard in self.uow.router.shards:
            self.uow.execute(statement, params, shard=shard)

    def _learner_shard(self, owned_id: uuid.UUID) -> str:
        return self.uow.router.shard_of_owner(owned_id)

    # ------------------------------------------------------ definitions (catalog)

    def create(self, values: Mapping[str, Any], at: datetime) -> None:
        """Create a draft assessment on every shard."""
        self._everywhere(_CREATE, {**values, "at": at})

    def add_question(self, values: Mapping[str, Any], at: datetime) -> None:
        """Add a question on every shard (options and answer key as JSON arrays)."""
        params = {
            **values,
            "options": list(values["options"]),
            "correct": list(values["correct"]),
            "at": at,
        }
        self._everywhere(_ADD_QUESTION, params)

    def publish(self, assessment_id: uuid.UUID, at: datetime) -> None:
        """Publish on every shard (each shard's trigger re-decides its enrollments' completion)."""
        self._everywhere(_PUBLISH, {"assessment_id": assessment_id, "at": at})

    def by_source(self, content_id: str) -> uuid.UUID | None:
        """Return the assessment made from a content document, if any (local shard)."""
        value = self.uow.execute(
            select(Assessment.id).where(Assessment.source_content_id == content_id)
        ).scalar()
        return None if value is None else uuid.UUID(str(value))

    # ------------------------------------------------------------ definitions (read)

    def views(self, rows: list[Mapping[Any, Any]]) -> list[AssessmentView]:
        if not rows:
            return []
        wanted = [row["id"] for row in rows]
        questions: dict[uuid.UUID, list[QuestionView]] = {aid: [] for aid in wanted}
        found = self.uow.execute(
            select(*_QUESTION_COLUMNS)
            .where(AssessmentQuestion.assessment_id.in_(bindparam("ids", expanding=True)))
            .order_by(AssessmentQuestion.assessment_id, AssessmentQuestion.question_order),
            {"ids": wanted},
        ).mappings()
        for row in found:
            questions[row["assessment_id"]].append(_question(row))
        return [_assessment(row, tuple(questions[row["id"]])) for row in rows]

    def get(self, assessment_id: uuid.UUID) -> AssessmentView:
        row = (
            self.uow.execute(select(*_ASSESSMENT_COLUMNS).where(Assessment.id == assessment_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"assessment {assessment_id} not found")
        return self.views([row])[0]

    def for_course(self, course_id: uuid.UUID) -> list[AssessmentView]:
        rows = (
            self.uow.execute(
                select(*_ASSESSMENT_COLUMNS)
                .where(Assessment.course_id == course_id)
                .order_by(Assessment.created_at, Assessment.id)
            )
            .mappings()
            .all()
        )
        return self.views(list(rows))

    # ---------------------------------------------------------------- attempts

    def start(
        self, attempt_id: uuid.UUID, enrollment_id: uuid.UUID, assessment_id: uuid.UUID
    ) -> None:
        self.uow.execute(
            _START,
            {
                "attempt_id": attempt_id,
                "enrollment_id": enrollment_id,
                "assessment_id": assessment_id,
            },
            shard=self._learner_shard(enrollment_id),
        )

    def answer(self, attempt_id: uuid.UUID, question_id: uuid.UUID, response: object) -> None:
        self.uow.execute(
            _ANSWER,
            {"attempt_id": attempt_id, "question_id": question_id, "response": response},
            shard=self._learner_shard(attempt_id),
        )

    def submit(self, attempt_id: uuid.UUID) -> AttemptView:
        shard = self._learner_shard(attempt_id)
        self.uow.execute(_SUBMIT, {"attempt_id": attempt_id}, shard=shard)
        return self.attempt(attempt_id)

    def grade(
        self,
        attempt_id: uuid.UUID,
        question_id: uuid.UUID,
        points: object,
        grader_id: uuid.UUID,
        feedback: str | None,
    ) -> AttemptView:
        self.uow.execute(
            _GRADE,
            {
                "attempt_id": attempt_id,
                "question_id": question_id,
                "points": points,
                "grader_id": grader_id,
                "feedback": feedback,
            },
            shard=self._learner_shard(attempt_id),
        )
        return self.attempt(attempt_id)

    def attempt(self, attempt_id: uuid.UUID) -> AttemptView:
        row = (
            self.uow.execute(
                select(*_ATTEMPT_COLUMNS).where(AssessmentAttempt.id == attempt_id),
                shard=self._learner_shard(attempt_id),
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"attempt {attempt_id} not found")
        return attempt_view(row)

    def attempts(
        self, enrollment_id: uuid.UUID, assessment_id: uuid.UUID | None
    ) -> list[AttemptView]:
        shard = self._learner_shard(enrollment_id)
        exists = self.uow.execute(
            select(Enrollment.id).where(Enrollment.id == enrollment_id), shard=shard
        ).first()
        if exists is None:
            raise NotFound(f"enrollment {enrollment_id} not found")
        stmt = select(*_ATTEMPT_COLUMNS).where(AssessmentAttempt.enrollment_id == enrollment_id)
        if assessment_id is not None:
            stmt = stmt.where(AssessmentAttempt.assessment_id == assessment_id)
        stmt = stmt.order_by(
            AssessmentAttempt.started_at.desc(), AssessmentAttempt.attempt_number.desc()
        )
        return [attempt_view(row) for row in self.uow.execute(stmt, shard=shard).mappings()]
