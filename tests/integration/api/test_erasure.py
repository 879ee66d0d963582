"""Right to erasure: ``db.users.erase`` across the home shard, the directory and the content store.

Checked on the real cluster as the cluster superuser sees it (no library code in
the way): after erasure no row of any shard holds the person's email, names,
phone, bio or review text; the directory row is gone from its own shard (chosen
here to differ from the home shard, so the erasure is a two-shard unit of work);
the preferences document is gone; enrollments, ratings, transactions and
invoices stay under the same, now pseudonymous, id.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from elearn_data.cli.app import app as cli_app
from elearn_data.cli.common import is_embedded, refuse_unless_embedded
from elearn_data.cluster.local import DBNAME, LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import InvalidState, NotFound
from elearn_data.security import EmailHasher, normalise_email
from tests.integration.api.helpers import PASSWORD, published_course, register

PHONE = "+44 20 7946 0958"
BIO = "Erasure-marker biography text"
REVIEW = "Erasure-marker review text"


def _email_on_another_shard(db: Database, home: str) -> str:
    hasher = EmailHasher(db.settings)
    for n in range(1000):
        email = f"erase-me-{n}-{uuid.uuid4().hex[:6]}@example.org"
        if db.router.directory_shard(hasher.digest(normalise_email(email))) != home:
            return email
    raise AssertionError("no email hashes to another shard")


def _everywhere(cluster: LocalCluster, query: str, *params: object) -> list[tuple[object, ...]]:
    """Run ``query`` as the superuser on every shard primary; return all rows."""
    state = cluster.state()
    found: list[tuple[object, ...]] = []
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname=DBNAME)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                found += cur.fetchall()
        finally:
            conn.close()
    return found


def test_erase_removes_personal_data_everywhere_and_keeps_the_books(
    clean: Database, cluster: LocalCluster
) -> None:
    db = clean
    email = _email_on_another_shard(db, "eu")
    user = register(db, "europe", email=email, first_name="Grace", last_name="Hopper-Marker")
    db.users.update_profile(user, phone=PHONE, bio=BIO, city="Leeds", timezone="Europe/London")
    db.payments.add_method(user, method_type="credit_card", card_last_four="4242", is_default=True)
    course, lessons = published_course(db, price=Decimal("20.00"))
    enrollment = db.enrollments.enroll(user, course)
    db.enrollments.complete_lesson(enrollment, lessons[0])
    db.reviews.add(enrollment, 4, REVIEW)
    tx = db.payments.create_transaction(user, course)
    db.payments.complete(tx, gateway_transaction_id=f"gw-{uuid.uuid4().hex}")
    db.process_outbox()
    assert db.content_store.preferences.get(user).notifications is not None

    db.users.erase(user)

    with pytest.raises(NotFound):
        db.users.get(user)
    assert db.users.find_by_email(email) is None
    assert db.users.authenticate(email, PASSWORD) is None
    with pytest.raises(NotFound):
        db.content_store.preferences.get(user)
    with pytest.raises(NotFound):
        db.users.erase(user)  # erased already

    # No personal value is left in any table of any shard.
    for marker in (email, "Hopper-Marker", "Grace", PHONE, BIO, REVIEW, "Leeds"):
        rows = _everywhere(
            cluster,
            "SELECT 'users' FROM users WHERE row(users.*)::text LIKE %s "
            "UNION ALL SELECT 'user_profiles' FROM user_profiles "
            "WHERE row(user_profiles.*)::text LIKE %s "
            "UNION ALL SELECT 'course_reviews' FROM course_reviews "
            "WHERE row(course_reviews.*)::text LIKE %s "
            "UNION ALL SELECT 'payment_methods' FROM payment_methods "
            "WHERE row(payment_methods.*)::text LIKE %s",
            *[f"%{marker}%"] * 4,
        )
        assert rows == [], (marker, rows)
    assert _everywhere(cluster, "SELECT 1 FROM email_directory WHERE user_id = %s", str(user)) == []
    assert _everywhere(cluster, "SELECT 1 FROM payment_methods WHERE user_id = %s", str(user)) == []
    assert _everywhere(cluster, "SELECT status FROM users WHERE id = %s", str(user)) == [
        ("erased",)
    ]
    # The books and the learning record stay, under the same id.
    assert [e.id for e in db.enrollments.for_user(user)] == [enrollment]
    assert db.enrollments.progress(enrollment).completed_lessons == 1
    [review] = db.reviews.for_course(course)
    assert (review.user_id, review.rating, review.text) == (user, 4, None)
    assert db.catalog.get_course(course).rating == Decimal("4")
    [purchase] = db.payments.history(user)
    assert (purchase.id, purchase.status, purchase.amount) == (tx, "completed", Decimal("20.00"))
    assert db.payments.invoice(tx).total == Decimal("22.00")

    # The email is free again: a new account, a new id.
    again = register(db, "asia", email=email)
    assert again != user
    found = db.users.find_by_email(email)
    assert found is not None and found.id == again
    assert db.users.authenticate(email, PASSWORD) is not None


def test_erasing_an_unknown_user_is_not_found(clean: Database) -> None:
    with pytest.raises(NotFound):
        clean.users.erase(uuid.uuid4())


def test_the_cli_erases_a_user_of_the_embedded_cluster(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"cli-erase-{uuid.uuid4().hex[:8]}@example.org"
    user = register(clean, "north_america", email=email)
    monkeypatch.setenv("ELEARN_HOME", str(cluster.home))
    result = CliRunner().invoke(cli_app, ["users", "erase", str(user)])
    assert result.exit_code == 0, result.output
    with pytest.raises(NotFound):
        clean.users.get(user)
    result = CliRunner().invoke(cli_app, ["users", "erase", str(user)])
    assert result.exit_code == 1
    assert "not found" in result.output


def _elsewhere(settings: Settings) -> Settings:
    """Settings naming the same shards on ports the embedded cluster does not use."""
    shards = {
        name: {"primary": f"postgresql://app@127.0.0.1:{9 + i}/elearn"}
        for i, name in enumerate(settings.shard_names)
    }
    return Settings(home=settings.home, shards=shards, argon2_allow_weak=True)


def test_destructive_commands_refuse_a_cluster_that_is_not_the_embedded_one(
    migrated: Settings, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert is_embedded(migrated)
    other = _elsewhere(migrated)
    assert not is_embedded(other)
    with pytest.raises(InvalidState, match="--force"):
        refuse_unless_embedded(other, "erase user x", force=False)
    refuse_unless_embedded(other, "erase user x", force=True)  # forced: allowed

    # Through the CLI: settings from the environment that name another cluster.
    monkeypatch.setenv("ELEARN_HOME", str(cluster.home))
    for index, shard in enumerate(migrated.shard_names):
        monkeypatch.setenv(
            f"ELEARN_SHARDS__{shard.upper()}__PRIMARY", f"postgresql://app@127.0.0.1:{9 + index}/x"
        )
    for argv in (["seed", "--reset"], ["users", "erase", str(uuid.uuid4())]):
        result = CliRunner().invoke(cli_app, argv)
        assert result.exit_code == 1, (argv, result.output)
        assert "--force" in result.output, (argv, result.output)
