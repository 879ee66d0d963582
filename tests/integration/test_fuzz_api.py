"""Bad input, fuzzed: every public method answers with a contract error and writes nothing.

For each public method of ``db.users``, ``db.catalog``, ``db.enrollments``,
``db.reviews``, ``db.payments``, ``db.assessments``, ``db.content`` and ``db.preferences``,
Hypothesis draws arguments that mix valid values (ids of real rows) with bad
ones: strings with quotes, NULs, SQL and format metacharacters, very long
strings, wrong types, unknown enum values, negative and huge numbers, NaN and
infinities, random UUIDs, ids we never issued and ids of the wrong kind (a
course id where a user id is expected, ...).

The property, for every call:

* it returns, or raises a *contract* error -- ``NotFound``, ``Duplicate``,
  ``InvalidInput`` or ``InvalidState`` (subclasses included). Never a driver
  error (psycopg2, SQLAlchemy, pymongo), never ``TypeError``/``ValueError``/
  ``KeyError`` from inside, never the bare root ``ElearnDataError`` (an
  untranslated SQLSTATE) and never ``ShardUnavailable``/``ConcurrencyConflict``
  (bad input must not look like an outage);
* when it raises, the row count of every table on every shard primary, the
  number of pending outbox entries and the content store's document counts
  are exactly what they were before the call;
* an error message never contains the password it was given.

Calls that succeed (a valid combination was drawn) are fine; the baseline is
then re-measured. The world the calls act on is built once per module
through the public API.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.models import Base
from elearn_data.models.base import LESSON_TYPES, LEVELS, METHOD_TYPES, ROLES
from elearn_data.regions import Region
from tests.support import truncate_all

CONTRACT_ERRORS = (NotFound, Duplicate, InvalidInput, InvalidState)
SERVICES = (
    "users",
    "catalog",
    "enrollments",
    "reviews",
    "payments",
    "assessments",
    "gamification",
    "content",
    "preferences",
)
PASSWORD = "fuzz password 123"
# Per method; ELEARN_FUZZ_EXAMPLES=500 for a long hunt.
EXAMPLES = int(os.environ.get("ELEARN_FUZZ_EXAMPLES", "25"))

# ----------------------------------------------------------------- the world


@dataclass
class World:
    student: uuid.UUID
    student_email: str
    instructor: uuid.UUID
    category: uuid.UUID
    course: uuid.UUID
    draft: uuid.UUID
    module: uuid.UUID
    lesson: uuid.UUID
    enrollment: uuid.UUID
    review: uuid.UUID
    method: uuid.UUID
    pending_tx: uuid.UUID
    completed_tx: uuid.UUID
    content_id: str
    assessment: uuid.UUID
    draft_assessment: uuid.UUID
    question: uuid.UUID
    attempt: uuid.UUID
    submitted_attempt: uuid.UUID
    quiz_id: str

    def learner_ids(self) -> list[uuid.UUID]:
        return [
            self.student,
            self.instructor,
            self.enrollment,
            self.review,
            self.method,
            self.pending_tx,
            self.completed_tx,
            self.attempt,
            self.submitted_attempt,
        ]

    def catalog_ids(self) -> list[uuid.UUID]:
        return [
            self.category,
            self.course,
            self.draft,
            self.module,
            self.lesson,
            self.assessment,
            self.draft_assessment,
            self.question,
        ]


@pytest.fixture(scope="module")
def world(db: Database, cluster: LocalCluster) -> World:
    truncate_all(cluster)
    db.content_store.faults.clear()
    db.content_store.clear()
    student_email = f"fuzz-student-{uuid.uuid4().hex[:6]}@example.org"
    student = db.users.register(
        email=student_email,
        password=PASSWORD,
        first_name="Fuzz",
        last_name="Student",
        region="europe",
    )
    instructor = db.users.register(
        email=f"fuzz-teacher-{uuid.uuid4().hex[:6]}@example.org",
        password=PASSWORD,
        first_name="Fuzz",
        last_name="Teacher",
        region="asia",
        role="instructor",
    )
    category = db.catalog.create_category("Fuzzing")
    course = db.catalog.create_course(
        code="FUZZ-1",
        title="Fuzzing 101",
        instructor_id=instructor,
        category_id=category,
        price=Decimal("10.00"),
        max_enrollments=1000,
    )
    module = db.catalog.add_module(course, title="Basics", order=1)
    lesson = db.catalog.add_lesson(
        module, title="Intro", order=1, lesson_type="video", content_id="fuzz-video-1"
    )
    content_id = db.content.add_video(
        content_id="fuzz-video-1",
        course_id=course,
        lesson_id=lesson,
        title="Intro video",
        video_url="https://videos.example.org/intro.mp4",
        duration_seconds=60,
    )
    db.catalog.publish(course)
    draft = db.catalog.create_course(code="FUZZ-DRAFT", title="Draft", instructor_id=instructor)
    enrollment = db.enrollments.enroll(student, course)
    review = db.reviews.add(enrollment, 4, "good")
    method = db.payments.add_method(student, method_type="paypal")
    pending_tx = db.payments.create_transaction(student, course)
    completed_tx = db.payments.create_transaction(student, course, idempotency_key="fuzz-done")
    db.payments.complete(completed_tx, gateway_transaction_id="gw-fuzz-1")
    assessment = db.assessments.create(course, title="Fuzz quiz")
    question = db.assessments.add_question(
        assessment, prompt="Pick", kind="single_choice", order=1, options=["a", "b"], correct=[0]
    )
    db.assessments.publish(assessment)
    draft_assessment = db.assessments.create(course, title="Fuzz draft", kind="exam")
    submitted_attempt = db.assessments.start(enrollment, assessment)
    db.assessments.submit(submitted_attempt)
    attempt = db.assessments.start(enrollment, assessment)
    quiz_id = db.content.add_quiz(
        content_id="fuzz-quiz-1",
        course_id=course,
        lesson_id=lesson,
        title="Fuzz quiz doc",
        questions=[{"question": "Why?", "options": ["a", "b"], "correct_option": 1}],
    )
    return World(
        student=student,
        student_email=student_email,
        instructor=instructor,
        category=category,
        course=course,
        draft=draft,
        module=module,
        lesson=lesson,
        enrollment=enrollment,
        review=review,
        method=method,
        pending_tx=pending_tx,
        completed_tx=completed_tx,
        content_id=content_id,
        assessment=assessment,
        draft_assessment=draft_assessment,
        question=question,
        attempt=attempt,
        submitted_attempt=submitted_attempt,
        quiz_id=quiz_id,
    )


# ------------------------------------------------------------------ counting


class Counter:
    """Row counts of every table on every shard primary, pending outbox, content documents."""

    def __init__(self, db: Database, cluster: LocalCluster) -> None:
        self.db = db
        state = cluster.state()
        self.conns = {
            shard: cluster.admin_connect(state.primary_of(shard), dbname="elearn")
            for shard in state.shards
        }
        tables = [t.name for t in Base.metadata.sorted_tables]
        parts = [f"(SELECT count(*) FROM {name})" for name in tables]
        parts.append("(SELECT count(*) FROM content_outbox WHERE processed_at IS NULL)")
        self.names = [*tables, "pending outbox"]
        self.query = "SELECT " + ", ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        # The outbox relay applies the rows of earlier successful calls in its own
        # thread: count once it has (a failed call's effects are then its own).
        self.db.wait_idle()
        counts: dict[str, Any] = {}
        for shard, conn in self.conns.items():
            with conn.cursor() as cur:
                cur.execute(self.query)
                row = cur.fetchone()
            counts.update({f"{shard}.{n}": v for n, v in zip(self.names, row, strict=True)})
        counts["content store"] = self.db.content_store.status().get("collections")
        return counts

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


@pytest.fixture(scope="module")
def counter(db: Database, cluster: LocalCluster, world: World) -> Iterator[Counter]:
    counting = Counter(db, cluster)
    yield counting
    counting.close()


# ---------------------------------------------------------------- strategies
#
# Every argument is an Arg: a strategy of acceptable-looking values and one of
# bad values. A call corrupts at most two of its arguments (often none, often
# one), so that the check of each argument is reached behind valid others
# instead of the first check failing every time.

# Legal but hostile text: stored as data, never interpreted.
HOSTILE = [
    "'",
    '"',
    "\\",
    "';--",
    "' OR '1'='1",
    "Robert'); DROP TABLE users;--",
    "%s",
    "%(x)s",
    "{}",
    "{0}",
    ":name",
    "$1",
    "$$ $$",
    "😀😀",
    "NaN",
    "null",
    "<script>alert(1)</script>",
    "&|!():*",
    "a & b | !c",
    "-- comment",
    "/* x */",
]
BLANK_OR_NUL = ["", " ", "\n\t\r", "\x00", "a\x00b", "\u0000'"]
# Refused in every text field (InvalidInput): control characters, bidi controls.
HOSTILE_CHARACTERS = ["\u202e", "a\u2066b", "a\x1b[31m", "\x07bell"]
LONG = ["x" * 101, "y" * 257, "z" * 5001, "é" * 20001, "w" * 100_001]

wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just({"$gt": ""}),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(object),
)
legal_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(
        alphabet=st.characters(
            codec="utf-8",
            exclude_categories=("Cc", "Cs"),
            exclude_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        ),
        min_size=1,
        max_size=20,
    ).filter(str.strip),
)
bad_text = st.one_of(
    st.sampled_from(BLANK_OR_NUL),
    st.sampled_from(HOSTILE_CHARACTERS),
    st.sampled_from(LONG),
    wrong_types,
)


@dataclass(frozen=True)
class Arg:
    valid: st.SearchStrategy[Any]
    bad: st.SearchStrategy[Any]

    def optional(self) -> Arg:
        return Arg(st.one_of(st.none(), self.valid), self.bad.filter(lambda v: v is not None))


def text_arg(*examples: str) -> Arg:
    valid = st.one_of(st.sampled_from(examples), legal_text) if examples else legal_text
    return Arg(valid, bad_text)


def choice_arg(values: tuple[str, ...]) -> Arg:
    near_misses = [v.upper() for v in values] + [f"{v}s" for v in values]
    return Arg(
        st.sampled_from(values),
        st.one_of(st.sampled_from(near_misses), legal_text, bad_text),
    )


def int_arg(low: int, high: int) -> Arg:
    return Arg(
        st.integers(min_value=low, max_value=high),
        st.one_of(
            st.integers(max_value=low - 1),
            st.integers(min_value=high + 1),
            st.sampled_from([-(2**31), 2**31, 2**63, 10**30]),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(["1", "one", True, False, Decimal("1.5"), None]),
        ),
    )


def money_arg() -> Arg:
    return Arg(
        st.decimals(min_value=Decimal("0.01"), max_value=1000, places=2),
        st.one_of(
            st.decimals(allow_nan=True, allow_infinity=True),
            st.sampled_from(
                [
                    Decimal("-0.01"),
                    Decimal("1e30"),
                    Decimal("0.001"),
                    Decimal("sNaN"),
                    Decimal("-Infinity"),
                ]
            ),
            st.integers(min_value=-(10**15), max_value=-1),
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(["abc", "1e999", "-5", True, [1]]),
        ),
    )


def bool_arg() -> Arg:
    return Arg(st.booleans(), st.sampled_from([0, 1, "yes", "", None, 1.0, "False"]))


def region_arg() -> Arg:
    return Arg(
        st.sampled_from([r.value for r in Region] + list(Region)),
        st.one_of(
            st.sampled_from(["eu", "na", "apac", "mars", "europe\x00", "north america"]),
            legal_text,
            bad_text,
        ),
    )


def url_arg() -> Arg:
    return Arg(
        st.sampled_from(["https://example.org/a", "http://example.org/b?x=1&y='2'"]),
        st.one_of(
            st.sampled_from(
                [
                    "javascript:alert(1)",
                    "ftp://example.org/x",
                    "https://exa mple.org",
                    "//example.org",
                    "https://" + "a" * 3000,
                    "data:text/html,<script>",
                ]
            ),
            legal_text,
            bad_text,
        ),
    )


def email_arg(existing: str) -> Arg:
    return Arg(
        st.one_of(st.emails(), st.sampled_from([existing, existing.upper(), f" {existing} "])),
        st.one_of(
            st.sampled_from(
                ["no-at-sign", "a@", "@b.org", "a@b", "a@@b.org", "x@" + "b" * 300 + ".org"]
            ),
            legal_text,
            bad_text,
        ),
    )


def strings_list(*examples: str) -> Arg:
    item = st.sampled_from(examples) if examples else legal_text
    return Arg(
        st.lists(item, max_size=4),
        st.one_of(
            st.just("not a list"),
            st.lists(st.one_of(bad_text, st.sampled_from(LONG[:2])), min_size=1, max_size=2),
            wrong_types.filter(lambda v: v is not None),
        ),
    )


def id_arg(world: World, *valid: uuid.UUID, exclude: tuple[uuid.UUID, ...] = ()) -> Arg:
    """Valid ids of the expected kind; bad: other kinds, random and never-issued ids, junk.

    ``exclude`` keeps a destructive method away from rows the other fuzzers need
    in their original state (deactivating the world's users, dropping its
    enrollment, ...).
    """
    others = [
        i for i in world.learner_ids() + world.catalog_ids() if i not in valid and i not in exclude
    ]
    bad = st.one_of(
        st.sampled_from(others),
        st.uuids(),
        st.uuids().map(str),
        st.sampled_from(list(Region)).map(ids.new_id),
        st.sampled_from([None, *Region]).map(ids.new_reference_id),
        st.sampled_from(["", "not-a-uuid", "00000000-0000-0000-0000-000000000000", "'; --"]),
        wrong_types,
    )
    if not valid:
        # Nothing of the expected kind may be touched: every draw is a foreign id.
        return Arg(bad, bad)
    return Arg(st.sampled_from([*valid, *(str(v) for v in valid)]), bad)


@st.composite
def _plan(
    draw: st.DrawFn,
    positional: tuple[Arg, ...],
    required: dict[str, Arg],
    optional: dict[str, Arg],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    names = [f"#{i}" for i in range(len(positional))] + list(required) + list(optional)
    corrupt = draw(st.sets(st.sampled_from(names), max_size=2)) if names else set()
    present = draw(st.sets(st.sampled_from(list(optional)))) if optional else set()

    def value(name: str, arg: Arg) -> Any:
        return draw(arg.bad if name in corrupt else arg.valid)

    args = tuple(value(f"#{i}", arg) for i, arg in enumerate(positional))
    kwargs = {name: value(name, arg) for name, arg in required.items()}
    kwargs.update(
        {name: value(name, arg) for name, arg in optional.items() if name in present | corrupt}
    )
    return args, kwargs


def call(*positional: Arg, optional: dict[str, Arg] | None = None, **required: Arg) -> Any:
    return _plan(positional, required, optional or {})


def plans(w: World) -> dict[str, st.SearchStrategy[Any]]:
    """One strategy of (args, kwargs) per public method."""
    user = id_arg(w, w.student, w.instructor)
    course = id_arg(w, w.course, w.draft)
    enrollment = id_arg(w, w.enrollment)
    tx = id_arg(w, w.pending_tx, w.completed_tx)
    lesson = id_arg(w, w.lesson)
    profile = {
        **{name: text_arg("Ok").optional() for name in ("first_name", "last_name", "city")},
        **{name: text_arg("Ok").optional() for name in ("country", "bio", "timezone")},
        "language": text_arg("en").optional(),
        "phone": text_arg("+33 1 23 45 67 89", "12", "555-0100 x12").optional(),
        "avatar_url": url_arg().optional(),
        # Unknown fields: InvalidInput whatever the value.
        "email": text_arg("a@b.org"),
        "password_hash": text_arg("x"),
        "role": text_arg("admin"),
        "id": text_arg("x"),
    }
    content_common = {
        "content_id": text_arg(w.content_id, "fuzz-new-1"),
        "course_id": course,
        "lesson_id": lesson,
        "title": text_arg("A title"),
    }
    subtitle = st.fixed_dictionaries({"language": st.just("en"), "url": url_arg().valid})
    subtitles = Arg(
        st.lists(subtitle, max_size=2),
        st.one_of(
            st.lists(
                st.fixed_dictionaries({"language": bad_text, "url": url_arg().bad}), max_size=2
            ),
            st.lists(st.fixed_dictionaries({"lang": st.just("en")}), min_size=1, max_size=1),
            st.just("en"),
            wrong_types.filter(lambda v: v is not None),
        ),
    )
    question = st.fixed_dictionaries(
        {"question": st.just("Why?"), "options": st.just(["a", "b"]), "correct_option": st.just(0)}
    )
    bad_question = st.fixed_dictionaries(
        {
            "question": st.one_of(st.just("Why?"), bad_text),
            "options": st.one_of(st.just(["a"]), strings_list().bad),
            "correct_option": st.one_of(st.just(5), int_arg(0, 1).bad),
        },
        optional={"points": int_arg(0, 10).bad, "extra": st.just(1)},
    )
    questions = Arg(
        st.lists(question, min_size=1, max_size=2),
        st.one_of(
            st.lists(bad_question, min_size=1, max_size=2),
            st.just([]),
            st.just({"question": "Why?"}),
            bad_text,
        ),
    )
    return {
        # users
        "users.register": call(
            email=email_arg(w.student_email),
            password=Arg(
                st.sampled_from([PASSWORD, 'p@ss\'word "quoted"', "%s%s%s%s"]),
                st.one_of(
                    st.text(max_size=7),
                    st.sampled_from(LONG[2:]),
                    st.just("a\x00" * 5),
                    wrong_types,
                ),
            ),
            first_name=text_arg("Ada"),
            last_name=text_arg("Lovelace"),
            region=region_arg(),
            optional={
                "role": choice_arg(ROLES),
                "country": text_arg("France").optional(),
                "city": text_arg("Paris").optional(),
                "phone": text_arg("+33 1 23 45 67 89").optional(),
            },
        ),
        "users.get": call(user),
        "users.find_by_email": call(email_arg(w.student_email)),
        "users.authenticate": call(
            email_arg(w.student_email), Arg(st.just(PASSWORD), st.one_of(legal_text, bad_text))
        ),
        "users.update_profile": call(user, optional=profile),
        "users.deactivate": call(id_arg(w, exclude=(w.student, w.instructor))),
        "users.erase": call(id_arg(w, exclude=(w.student, w.instructor))),
        # catalog
        "catalog.create_category": call(
            text_arg("Fuzzing", "New category"),
            text_arg("desc").optional(),
            Arg(st.one_of(st.none(), st.just(w.category)), id_arg(w, w.category).bad),
        ),
        "catalog.create_course": call(
            code=text_arg("FUZZ-1", "FUZZ-NEW", "fuzz.2"),
            title=text_arg("Title"),
            instructor_id=id_arg(w, w.instructor, w.student),
            optional={
                "description": text_arg("d").optional(),
                "category_id": id_arg(w, w.category).optional(),
                "level": choice_arg(LEVELS),
                "price": money_arg(),
                "currency": text_arg("USD", "usd", "EUR"),
                "duration_hours": money_arg().optional(),
                "max_enrollments": int_arg(1, 10).optional(),
                "language": text_arg("English"),
            },
        ),
        "catalog.add_module": call(
            course,
            title=text_arg("Module"),
            order=int_arg(1, 5),
            optional={"description": text_arg("d").optional()},
        ),
        "catalog.add_lesson": call(
            id_arg(w, w.module),
            title=text_arg("Lesson"),
            order=int_arg(1, 5),
            lesson_type=choice_arg(LESSON_TYPES),
            optional={
                "content_id": text_arg(w.content_id).optional(),
                "duration_minutes": int_arg(0, 100).optional(),
                "is_preview": bool_arg(),
            },
        ),
        "catalog.publish": call(course),
        # Below the world course's live enrollment: InvalidInput; None: unlimited.
        "catalog.set_capacity": call(course, int_arg(1, 100).optional()),
        "catalog.archive": call(id_arg(w, w.draft, exclude=(w.course,))),
        # The world's course has an enrollment: never deletable (InvalidState).
        "catalog.delete_course": call(id_arg(w, w.course, exclude=(w.draft,))),
        "catalog.get_course": call(course),
        "catalog.curriculum": call(course),
        "catalog.search": call(
            text_arg("fuzz", "101", "fuzz & 101", "!fuzz").optional(),
            optional={
                "category_id": id_arg(w, w.category).optional(),
                "level": choice_arg(LEVELS).optional(),
                "min_rating": Arg(
                    st.sampled_from([None, 0, 4.5, Decimal("3.5"), 5]), money_arg().bad
                ),
                "max_price": money_arg().optional(),
                "limit": int_arg(1, 100),
            },
        ),
        "catalog.popular": call(int_arg(1, 50)),
        # enrollments
        "enrollments.enroll": call(user, course),
        "enrollments.get": call(enrollment),
        "enrollments.for_user": call(
            user, optional={"status": choice_arg(("active", "completed", "dropped")).optional()}
        ),
        "enrollments.complete_lesson": call(
            enrollment, lesson, optional={"time_spent_minutes": int_arg(0, 60)}
        ),
        "enrollments.reset_lesson": call(enrollment, lesson),
        "enrollments.progress": call(enrollment),
        "enrollments.drop": call(id_arg(w, exclude=(w.enrollment,))),
        "enrollments.issue_certificate": call(enrollment, url_arg()),
        # reviews
        "reviews.add": call(enrollment, int_arg(1, 5), text_arg("nice").optional()),
        "reviews.delete": call(id_arg(w, exclude=(w.review,))),
        "reviews.for_course": call(course, int_arg(1, 50)),
        # payments
        "payments.add_method": call(
            user,
            method_type=choice_arg(METHOD_TYPES),
            optional={
                "card_last_four": Arg(
                    st.sampled_from([None, "4242"]),
                    st.sampled_from(["42x2", "12345", "", "\uff14\uff12\uff14\uff12", 4242]),
                ),
                "card_brand": text_arg("Visa").optional(),
                "expiry_month": int_arg(1, 12).optional(),
                "expiry_year": int_arg(2000, 2100).optional(),
                "is_default": bool_arg(),
            },
        ),
        "payments.methods": call(user),
        "payments.create_transaction": call(
            user,
            course,
            optional={
                "amount": money_arg().optional(),
                "payment_method_id": id_arg(w, w.method).optional(),
                "currency": text_arg("USD", "usd"),
                "idempotency_key": text_arg("fuzz-done", "k1").optional(),
            },
        ),
        "payments.complete": call(tx, gateway_transaction_id=text_arg("gw-fuzz-1", "gw-2")),
        "payments.fail": call(id_arg(w, w.completed_tx, exclude=(w.pending_tx,))),
        "payments.refund": call(id_arg(w, w.pending_tx, exclude=(w.completed_tx,))),
        "payments.get": call(tx),
        "payments.history": call(user, int_arg(1, 50)),
        "payments.invoice": call(tx),
        # content
        "content.add_video": call(
            **content_common,
            video_url=url_arg(),
            duration_seconds=int_arg(0, 3600),
            optional={
                "thumbnail_url": url_arg().optional(),
                "subtitles": subtitles,
                "quality_options": strings_list("720p", "1080p"),
            },
        ),
        "content.add_document": call(
            **content_common,
            document_url=url_arg(),
            document_type=choice_arg(("pdf", "slides", "epub", "html", "text")),
            file_size_bytes=int_arg(0, 10**6),
            optional={"page_count": int_arg(0, 100).optional()},
        ),
        "content.add_quiz": call(**content_common, questions=questions),
        "content.get": call(text_arg(w.content_id)),
        "content.for_course": call(course),
        "content.for_lesson": call(lesson),
        "content.record_view": call(text_arg(w.content_id)),
        "content.record_download": call(text_arg(w.content_id)),
        "content.delete_for_course": call(id_arg(w, w.draft, exclude=(w.course,))),
        "content.sync_lessons": call(course),
        # preferences
        "preferences.get": call(user),
        "preferences.set_learning": call(
            user,
            optional={
                "preferred_categories": strings_list(),
                "preferred_languages": strings_list("en", "fr"),
                "difficulty_level": choice_arg(("beginner", "intermediate", "advanced")),
                "learning_pace": choice_arg(("slow", "moderate", "fast")),
                # Unknown: InvalidInput whatever the value.
                "favourite_colour": text_arg("blue"),
            },
        ),
        "preferences.set_notifications": call(
            user,
            optional={
                "email": bool_arg(),
                "push": bool_arg(),
                "course_updates": bool_arg(),
                "promotional": bool_arg(),
                "sms": bool_arg(),
            },
        ),
        "preferences.add_to_wishlist": call(user, course),
        "preferences.remove_from_wishlist": call(user, course),
        "preferences.record_viewed": call(user, course),
        # assessments
        **assessment_plans(w, course, enrollment),
        **gamification_plans(user, course),
    }


def assessment_plans(w: World, course: Arg, enrollment: Arg) -> dict[str, st.SearchStrategy[Any]]:
    """The strategies of ``db.assessments`` (definitions are catalog writes, attempts owned)."""
    assessment = id_arg(w, w.assessment, w.draft_assessment)
    attempt = id_arg(w, w.attempt, w.submitted_attempt)
    question = id_arg(w, w.question)
    percent = Arg(
        st.sampled_from([0, 60, Decimal("72.5"), 100]),
        st.one_of(money_arg().bad, st.sampled_from([101, Decimal("100.01"), -1])),
    )
    response = Arg(
        st.one_of(st.integers(0, 3), st.booleans(), legal_text, st.lists(st.integers(0, 3))),
        st.one_of(
            st.integers(min_value=50),
            st.integers(max_value=-1),
            st.sampled_from(LONG[3:]),
            st.sampled_from(BLANK_OR_NUL[3:]),
            st.lists(st.one_of(st.integers(min_value=50), bad_text), min_size=1, max_size=2),
            st.floats(allow_nan=True),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.builds(object),
        ),
    )
    key = Arg(
        st.sampled_from([(0,), [1], (0, 1), (True,), False, ("Paris",), ()]),
        st.one_of(strings_list().bad, st.sampled_from([(5,), (-1,), (0, 0), ("",), 2**70])),
    )
    return {
        "assessments.create": call(
            course,
            title=text_arg("Quiz"),
            optional={
                "kind": choice_arg(("quiz", "assignment", "exam")),
                "passing_percent": percent,
                "max_attempts": int_arg(1, 5).optional(),
                "time_limit_minutes": int_arg(1, 120).optional(),
                "required": bool_arg(),
                "lesson_id": id_arg(w, w.lesson).optional(),
            },
        ),
        "assessments.add_question": call(
            assessment,
            prompt=text_arg("Why?"),
            kind=choice_arg(
                ("single_choice", "multiple_choice", "true_false", "short_answer", "essay")
            ),
            order=int_arg(1, 5),
            optional={
                "points": Arg(
                    st.sampled_from([1, 2, Decimal("0.5")]),
                    st.one_of(money_arg().bad, st.sampled_from([0, -1, 10**6])),
                ),
                "options": strings_list("a", "b", "c"),
                "correct": key,
            },
        ),
        "assessments.publish": call(assessment),
        "assessments.get": call(assessment),
        "assessments.for_course": call(course),
        "assessments.from_quiz_content": call(
            text_arg(w.quiz_id, w.content_id, "fuzz-none"),
            optional={
                "passing_percent": percent,
                "max_attempts": int_arg(1, 5).optional(),
                "time_limit_minutes": int_arg(1, 120).optional(),
                "required": bool_arg(),
                "publish": bool_arg(),
            },
        ),
        "assessments.start": call(enrollment, assessment),
        "assessments.answer": call(attempt, question, response),
        "assessments.submit": call(id_arg(w, w.submitted_attempt, exclude=(w.attempt,))),
        "assessments.grade": call(
            attempt,
            question,
            points=Arg(st.sampled_from([0, 1, Decimal("0.5")]), money_arg().bad),
            grader_id=id_arg(w, w.instructor, w.student),
            optional={"feedback": text_arg("Fine").optional()},
        ),
        "assessments.attempts": call(enrollment, assessment.optional()),
        "assessments.attempt": call(attempt),
    }


def gamification_plans(user: Arg, course: Arg) -> dict[str, st.SearchStrategy[Any]]:
    criteria = (
        "lessons_completed",
        "courses_completed",
        "assessments_passed",
        "reviews_written",
        "streak_days",
        "points",
    )
    return {
        "gamification.summary": call(user),
        "gamification.history": call(user, optional={"limit": int_arg(1, 1000)}),
        "gamification.badges": call(user),
        "gamification.create_badge": call(
            text_arg("FUZZ-BADGE", "ab"),
            name=text_arg("Fuzz badge"),
            criterion=choice_arg(criteria),
            threshold=int_arg(0, 1000),
            optional={"description": text_arg("Earned by fuzzing").optional()},
        ),
        "gamification.leaderboard": call(
            optional={
                "limit": int_arg(1, 1000),
                "period": choice_arg(("all", "month", "week")),
                "region": region_arg().optional(),
                "course_id": course.optional(),
            }
        ),
        # The valid value is the default: other tests of the session keep their points.
        "gamification.set_points": call(
            choice_arg(("streak_day",)),
            Arg(st.just(5), int_arg(0, 1_000_000).bad),
        ),
    }


def public_methods(db: Database) -> list[str]:
    names = []
    for service in SERVICES:
        obj = getattr(db, service)
        for name, _ in inspect.getmembers(type(obj), inspect.isfunction):
            if not name.startswith("_"):
                names.append(f"{service}.{name}")
    return sorted(names)


# --------------------------------------------------------------------- tests


def _method(db: Database, name: str) -> Callable[..., Any]:
    service, method = name.split(".")
    return getattr(getattr(db, service), method)  # type: ignore[no-any-return]


def test_every_public_method_has_a_fuzz_strategy(db: Database, world: World) -> None:
    assert sorted(plans(world)) == public_methods(db)


# Listed statically so that pytest shows one test per method; the test above
# keeps this list equal to the services' real public methods.
METHODS = [
    "assessments.add_question",
    "assessments.answer",
    "assessments.attempt",
    "assessments.attempts",
    "assessments.create",
    "assessments.for_course",
    "assessments.from_quiz_content",
    "assessments.get",
    "assessments.grade",
    "assessments.publish",
    "assessments.start",
    "assessments.submit",
    "catalog.add_lesson",
    "catalog.add_module",
    "catalog.archive",
    "catalog.create_category",
    "catalog.create_course",
    "catalog.curriculum",
    "catalog.delete_course",
    "catalog.get_course",
    "catalog.popular",
    "catalog.publish",
    "catalog.search",
    "catalog.set_capacity",
    "content.add_document",
    "content.add_quiz",
    "content.add_video",
    "content.delete_for_course",
    "content.for_course",
    "content.for_lesson",
    "content.get",
    "content.record_download",
    "content.record_view",
    "content.sync_lessons",
    "enrollments.complete_lesson",
    "enrollments.drop",
    "enrollments.enroll",
    "enrollments.for_user",
    "enrollments.get",
    "enrollments.issue_certificate",
    "enrollments.progress",
    "enrollments.reset_lesson",
    "gamification.badges",
    "gamification.create_badge",
    "gamification.history",
    "gamification.leaderboard",
    "gamification.set_points",
    "gamification.summary",
    "payments.add_method",
    "payments.complete",
    "payments.create_transaction",
    "payments.fail",
    "payments.get",
    "payments.history",
    "payments.invoice",
    "payments.methods",
    "payments.refund",
    "preferences.add_to_wishlist",
    "preferences.get",
    "preferences.record_viewed",
    "preferences.remove_from_wishlist",
    "preferences.set_learning",
    "preferences.set_notifications",
    "reviews.add",
    "reviews.delete",
    "reviews.for_course",
    "users.authenticate",
    "users.deactivate",
    "users.erase",
    "users.find_by_email",
    "users.get",
    "users.register",
    "users.update_profile",
]


def test_the_static_method_list_matches_the_services(db: Database) -> None:
    assert public_methods(db) == METHODS


@pytest.mark.parametrize("name", METHODS)
def test_bad_input_raises_a_contract_error_and_writes_nothing(
    db: Database, world: World, counter: Counter, name: str
) -> None:
    method = _method(db, name)
    strategy = plans(world)[name]
    state = {"baseline": counter.snapshot()}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def check(plan: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        args, kwargs = plan
        try:
            method(*args, **kwargs)
        except CONTRACT_ERRORS as exc:
            after = counter.snapshot()
            changed = {
                k: (state["baseline"][k], after[k])
                for k in after
                if after[k] != state["baseline"].get(k)
            }
            assert not changed, f"{name} raised {exc!r} but changed {changed}"
            password = kwargs.get("password")
            if isinstance(password, str) and len(password) >= 8:
                assert password not in str(exc), "an error message shows the password"
            return
        except BaseException:
            # Anything else escapes as the failure (a driver error, TypeError, the
            # bare root error...); re-measure so later examples compare correctly.
            state["baseline"] = counter.snapshot()
            raise
        state["baseline"] = counter.snapshot()

    check()


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(first=legal_text, city=legal_text, bio=legal_text)
def test_hostile_text_is_stored_and_read_back_as_data(
    db: Database, world: World, first: str, city: str, bio: str
) -> None:
    """Quotes, SQL, format and PL/pgSQL metacharacters are values, never code."""
    db.users.update_profile(world.student, first_name=first[:100], city=city[:100], bio=bio)
    view = db.users.get(world.student)
    assert (view.first_name, view.city, view.bio) == (
        first[:100].strip(),
        city[:100].strip(),
        bio.strip(),
    )
    # Full-text search takes the same text as a query string, never as syntax.
    assert isinstance(db.catalog.search(bio), list)
