"""``Database.causal_scope``: read-your-writes per caller, not per connect() object."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.repositories.users import UsersRepository
from elearn_data.sharding.consistency import CausalToken

from .factories import add_user


def test_writes_in_a_scope_merge_into_the_scope_only(clean: Database) -> None:
    db = clean
    user = add_user(db)
    before = db.token
    with db.causal_scope() as scope:
        db.users.update_profile(user, city="Lyon")
        assert scope.current().get("eu")
        assert db.token == scope.current()
    assert db.token == before


def test_a_token_from_another_process_is_honoured_in_a_scope(
    clean: Database, migrated: Settings
) -> None:
    writer = clean
    user = add_user(writer)
    reader = connect(migrated)
    try:
        for n in range(50):
            with writer.causal_scope() as written:
                writer.users.update_profile(user, city=f"City {n}")
            with reader.causal_scope(written.current()):
                assert reader.users.get(user).city == f"City {n}"
        # The reader's own token never grew: other callers do not wait for these writes.
        assert reader.token == CausalToken()
    finally:
        reader.close()


def test_a_scope_follows_the_caller_into_a_worker_thread(clean: Database) -> None:
    db = clean
    user = add_user(db)
    seen: list[Any] = []
    with db.causal_scope() as scope:
        db.users.update_profile(user, city="Porto")
        ctx = contextvars.copy_context()

        def read() -> None:
            def fn(uow: Any) -> Any:
                return UsersRepository(uow).get(user).city, uow.token

            with db.reader("eu") as uow:
                seen.append(fn(uow))

        thread = threading.Thread(target=ctx.run, args=(read,))
        thread.start()
        thread.join()
    assert seen[0][0] == "Porto"
    assert seen[0][1] == scope.current()
