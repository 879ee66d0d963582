"""One drift rule: a database's revision against the code's head and known revisions."""

from __future__ import annotations

from elearn_data import migrations


def test_state_of_a_revision_against_the_code() -> None:
    code = migrations.CodeRevisions(head="0003", known=frozenset({"0001", "0002", "0003"}))
    assert code.state_of("0003") == "ok"
    assert code.state_of("0001") == "behind"
    assert code.state_of(None) == "behind"  # never migrated
    assert code.state_of("ffff_from_the_future") == "ahead"


def test_the_packaged_migrations_know_their_head() -> None:
    code = migrations.code_revisions()
    assert code.head == migrations.head_revision()
    assert set(migrations.known_revisions()) == code.known
    assert code.state_of(code.head) == "ok"
    assert code.state_of(migrations.known_revisions()[0]) == "behind"
