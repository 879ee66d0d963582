"""ContentStore: backends, status, isolation of stores, fault injection, closing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from uuid import uuid4

import mongoengine.connection
import pytest
from mongoengine.connection import get_connection

from elearn_data.content import WRITE_OPERATIONS, ContentStore, ContentUnavailable
from elearn_data.errors import ConfigurationError, ElearnDataError, InvalidInput, NotFound
from tests.integration.content.factories import (
    UNREACHABLE_URI,
    add_document,
    add_video,
    make_settings,
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (a process no other test has touched)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ------------------------------------------------------------------------ status


def test_status_reports_backend_reachability_and_document_counts(store: ContentStore) -> None:
    add_video(store)
    add_document(store)
    store.preferences.ensure(uuid4())

    status = store.status()

    assert status["backend"] == store.backend
    assert status["database"] == store.database_name
    assert status["reachable"] is True
    assert status["error"] is None
    assert status["collections"] == {"course_content": 2, "user_preferences": 1}


def test_a_store_without_uri_runs_on_mongomock_and_says_so_in_status() -> None:
    with ContentStore(make_settings(None, "elearn_status")) as store:
        status = store.status()

    assert status["backend"] == "mongomock"
    assert status["address"] is None
    assert status["database"] == "elearn_status"
    assert status["reachable"] is True


def test_status_of_an_unreachable_server_reports_it_without_raising() -> None:
    with ContentStore(make_settings(UNREACHABLE_URI)) as store:
        status = store.status()

    assert status["backend"] == "mongodb"
    assert status["reachable"] is False
    assert status["collections"] == {}
    assert "127.0.0.1:1" in status["error"]


def test_calls_on_an_unreachable_server_raise_content_unavailable() -> None:
    with ContentStore(make_settings(UNREACHABLE_URI)) as store:
        with pytest.raises(ContentUnavailable, match="unreachable"):
            add_video(store)
        with pytest.raises(ContentUnavailable):
            store.content.get("anything")
        with pytest.raises(ContentUnavailable):
            store.ensure_indexes()


def test_status_and_repr_never_show_the_password() -> None:
    uri = "mongodb://app:s3cret-pw@127.0.0.1:1/?serverSelectionTimeoutMS=200"
    with ContentStore(make_settings(uri)) as store:
        status = store.status()

        assert "s3cret-pw" not in repr(store)
        assert "s3cret-pw" not in str(status)
        assert status["address"] == "mongodb://app:***@127.0.0.1:1/?serverSelectionTimeoutMS=200"


@pytest.mark.parametrize(
    "uri", ["http://not-mongo.example.com", "mongodb://127.0.0.1:1/?w=banana&journal=maybe"]
)
def test_an_invalid_mongo_uri_raises_configuration_error_and_leaves_no_alias(uri: str) -> None:
    registered = set(mongoengine.connection._connection_settings)

    with pytest.raises(ConfigurationError, match="mongo_uri"):
        ContentStore(make_settings(uri))

    assert set(mongoengine.connection._connection_settings) == registered


def test_content_unavailable_is_an_elearn_data_error() -> None:
    assert issubclass(ContentUnavailable, ElearnDataError)


# ------------------------------------------------------------------------ indexes


def test_ensure_indexes_creates_the_declared_indexes(store: ContentStore) -> None:
    store.ensure_indexes()
    store.ensure_indexes()  # idempotent

    database = get_connection(store.alias)[store.database_name]
    content = database["course_content"].index_information()
    preferences = database["user_preferences"].index_information()

    assert content["content_id_unique"]["key"] == [("content_id", 1)]
    assert content["content_id_unique"]["unique"] is True
    assert content["course_lesson"]["key"] == [("course_id", 1), ("lesson_id", 1)]
    assert content["lesson"]["key"] == [("lesson_id", 1)]
    assert preferences["user_id_unique"]["key"] == [("user_id", 1)]
    assert preferences["user_id_unique"]["unique"] is True


# ---------------------------------------------------------------- fault injection


def test_an_injected_fault_raises_content_unavailable_and_writes_nothing(
    store: ContentStore,
) -> None:
    course_id = uuid4()
    store.faults.fail_next()

    with pytest.raises(ContentUnavailable, match="injected"):
        add_video(store, course_id=course_id)

    assert store.faults.pending == 0
    assert store.content.for_course(course_id) == []
    add_video(store, course_id=course_id)  # the fault is used up
    assert len(store.content.for_course(course_id)) == 1


def test_fail_next_n_fails_exactly_n_writes_of_any_kind(store: ContentStore) -> None:
    content_id = add_video(store)
    user_id = uuid4()
    store.faults.fail_next(3)

    with pytest.raises(ContentUnavailable):
        store.content.record_view(content_id)
    with pytest.raises(ContentUnavailable):
        store.preferences.ensure(user_id)
    with pytest.raises(ContentUnavailable):
        store.content.delete(content_id)
    store.content.record_view(content_id)

    assert store.content.get(content_id).views == 1
    with pytest.raises(NotFound):
        store.preferences.get(user_id)


def test_a_fault_for_one_operation_leaves_other_writes_and_reads_alone(
    store: ContentStore,
) -> None:
    course_id = uuid4()
    add_video(store, course_id=course_id)
    store.faults.fail_next(operation="content.delete_for_course")

    other = add_video(store, course_id=course_id)
    assert store.content.get(other).content_id == other
    with pytest.raises(ContentUnavailable):
        store.content.delete_for_course(course_id)

    assert len(store.content.for_course(course_id)) == 2
    assert store.content.delete_for_course(course_id) == 2


def test_fault_injector_rejects_unknown_operations_and_can_be_cleared(
    store: ContentStore,
) -> None:
    with pytest.raises(InvalidInput, match=r"content\.remove"):
        store.faults.fail_next(operation="content.remove")
    with pytest.raises(InvalidInput):
        store.faults.fail_next(0)

    store.faults.fail_next(5)
    store.faults.clear()

    assert store.faults.pending == 0
    add_video(store)
    assert "content.add_video" in WRITE_OPERATIONS


# -------------------------------------------------------------- stores, lifecycle


def test_two_stores_in_one_process_do_not_see_each_others_data(
    make_store: Callable[[], ContentStore],
) -> None:
    first, second = make_store(), make_store()
    user_id = uuid4()

    add_video(first, content_id="only-in-first")
    first.preferences.ensure(user_id)

    with pytest.raises(NotFound):
        second.content.get("only-in-first")
    with pytest.raises(NotFound):
        second.preferences.get(user_id)
    add_video(second, content_id="only-in-first")  # no Duplicate across stores
    assert first.alias != second.alias


def test_two_in_process_stores_with_identical_settings_are_still_separate() -> None:
    settings = make_settings(None, "same_name")
    with ContentStore(settings) as first, ContentStore(settings) as second:
        add_video(first, content_id="mine")

        assert second.content.exists(["mine"]) == set()


def test_closing_one_store_leaves_another_working(
    make_store: Callable[[], ContentStore],
) -> None:
    first, second = make_store(), make_store()
    content_id = add_video(second)

    first.close()

    assert second.content.get(content_id).content_id == content_id
    assert second.status()["reachable"] is True


def test_close_unregisters_the_alias_and_later_calls_raise_content_unavailable() -> None:
    store = ContentStore(make_settings())
    content_id = add_video(store)

    store.close()
    store.close()  # idempotent

    assert store.alias not in mongoengine.connection._connection_settings
    with pytest.raises(ContentUnavailable, match="closed"):
        store.content.get(content_id)
    with pytest.raises(ContentUnavailable, match="closed"):
        store.preferences.ensure(uuid4())
    status = store.status()
    assert status["reachable"] is False
    assert "closed" in status["error"]


def test_importing_the_package_connects_nothing() -> None:
    result = run_python(
        """
        import elearn_data.content
        import elearn_data.content.store
        from mongoengine import connection
        assert not connection._connection_settings, connection._connection_settings
        assert not connection._connections, connection._connections
        print("ok")
        """
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_in_process_warning_is_logged_once_per_process() -> None:
    result = run_python(
        """
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(name)s|%(message)s")
        from tests.integration.content.factories import make_settings
        from elearn_data.content import ContentStore
        for _ in range(3):
            ContentStore(make_settings()).close()
        """
    )

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "mongomock" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("elearn_data.content.store|")
