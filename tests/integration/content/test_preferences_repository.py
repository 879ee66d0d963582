"""PreferencesRepository: partial updates, wishlist as a set, bounded recently viewed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from elearn_data.content import (
    ContentStore,
    LearningView,
    NotificationsView,
    PreferencesView,
)
from elearn_data.errors import InvalidInput, NotFound


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads started together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def user(store: ContentStore) -> UUID:
    """A learner whose default preferences exist."""
    user_id = uuid4()
    store.preferences.ensure(user_id)
    return user_id


def filled(store: ContentStore, user_id: UUID) -> PreferencesView:
    """Give every group of ``user_id``'s preferences a non-default value; return them."""
    prefs = store.preferences
    prefs.set_learning(
        user_id,
        preferred_categories=["programming"],
        preferred_languages=["en"],
        difficulty_level="intermediate",
        learning_pace="moderate",
    )
    prefs.set_notifications(user_id, push=True, promotional=True)
    prefs.add_to_wishlist(user_id, uuid4())
    prefs.record_viewed(user_id, uuid4())
    return prefs.get(user_id)


# ------------------------------------------------------------------ create and get


def test_get_before_ensure_raises_not_found(store: ContentStore) -> None:
    user_id = uuid4()

    with pytest.raises(NotFound, match=str(user_id)):
        store.preferences.get(user_id)


def test_ensure_creates_the_defaults(store: ContentStore) -> None:
    user_id = uuid4()

    created = store.preferences.ensure(user_id)
    view = store.preferences.get(user_id)

    assert created is True
    assert view.user_id == user_id
    assert view.learning == LearningView((), (), None, None)
    assert view.notifications == NotificationsView(
        email=True, push=False, course_updates=True, promotional=False
    )
    assert (view.wishlist, view.recently_viewed) == ((), ())
    assert view.created_at.utcoffset() is not None


def test_ensure_on_existing_preferences_changes_nothing(store: ContentStore, user: UUID) -> None:
    before = filled(store, user)

    created = store.preferences.ensure(user)

    assert created is False
    assert store.preferences.get(user) == before


def test_concurrent_ensure_creates_one_document(store: ContentStore) -> None:
    user_id = uuid4()
    results: list[bool] = []

    run_in_threads(10, lambda _: results.append(store.preferences.ensure(user_id)))

    assert sorted(results) == [False] * 9 + [True]
    assert store.status()["collections"]["user_preferences"] == 1


def test_delete_removes_preferences_and_is_idempotent(store: ContentStore, user: UUID) -> None:
    assert store.preferences.delete(user) is True
    assert store.preferences.delete(user) is False
    with pytest.raises(NotFound):
        store.preferences.get(user)


# --------------------------------------------------------------- partial updates


def test_set_learning_changes_only_the_given_fields_and_no_other_group(
    store: ContentStore, user: UUID
) -> None:
    before = filled(store, user)

    store.preferences.set_learning(user, difficulty_level="advanced")
    after = store.preferences.get(user)

    assert after.learning == LearningView(("programming",), ("en",), "advanced", "moderate")
    assert after.notifications == before.notifications
    assert after.wishlist == before.wishlist
    assert after.recently_viewed == before.recently_viewed
    assert after.updated_at >= before.updated_at


def test_set_learning_replaces_a_list_with_the_given_one(store: ContentStore, user: UUID) -> None:
    filled(store, user)

    store.preferences.set_learning(user, preferred_categories=["design", "data"])
    store.preferences.set_learning(user, preferred_languages=[])

    learning = store.preferences.get(user).learning
    assert learning.preferred_categories == ("design", "data")
    assert learning.preferred_languages == ()
    assert learning.difficulty_level == "intermediate"


def test_set_notifications_changes_only_the_given_switches_and_no_other_group(
    store: ContentStore, user: UUID
) -> None:
    before = filled(store, user)

    store.preferences.set_notifications(user, email=False)
    after = store.preferences.get(user)

    assert after.notifications == NotificationsView(
        email=False, push=True, course_updates=True, promotional=True
    )
    assert after.learning == before.learning
    assert after.wishlist == before.wishlist
    assert after.recently_viewed == before.recently_viewed


def test_concurrent_updates_of_different_groups_all_survive(
    store: ContentStore, user: UUID
) -> None:
    courses = [uuid4() for _ in range(10)]

    def work(i: int) -> None:
        prefs = store.preferences
        if i == 0:
            prefs.set_learning(user, difficulty_level="beginner")
        elif i == 1:
            prefs.set_notifications(user, promotional=True)
        else:
            prefs.add_to_wishlist(user, courses[i - 2])

    run_in_threads(12, work)
    view = store.preferences.get(user)

    assert view.learning.difficulty_level == "beginner"
    assert view.notifications.promotional is True
    assert set(view.wishlist) == set(courses)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"difficulty_level": "expert"}, "expert"),
        ({"learning_pace": "warp"}, "warp"),
        ({"preferred_categories": "programming"}, "programming"),
        ({"preferred_languages": [""]}, "preferred_languages"),
    ],
)
def test_invalid_learning_values_raise_invalid_input_and_change_nothing(
    store: ContentStore, user: UUID, change: dict[str, Any], named: str
) -> None:
    before = filled(store, user)

    with pytest.raises(InvalidInput, match=named):
        store.preferences.set_learning(user, **change)

    assert store.preferences.get(user) == before


def test_a_non_bool_notification_switch_raises_invalid_input(
    store: ContentStore, user: UUID
) -> None:
    with pytest.raises(InvalidInput, match="email"):
        store.preferences.set_notifications(user, email="yes")  # type: ignore[arg-type]

    assert store.preferences.get(user).notifications.email is True


@pytest.mark.parametrize(
    "call",
    [
        lambda p, u: p.set_learning(u, learning_pace="fast"),
        lambda p, u: p.set_notifications(u, push=True),
        lambda p, u: p.add_to_wishlist(u, uuid4()),
        lambda p, u: p.remove_from_wishlist(u, uuid4()),
        lambda p, u: p.record_viewed(u, uuid4()),
    ],
    ids=["set_learning", "set_notifications", "add", "remove", "record_viewed"],
)
def test_changes_for_a_user_without_preferences_raise_not_found_and_create_nothing(
    store: ContentStore, call: Callable[[Any, UUID], None]
) -> None:
    user_id = uuid4()

    with pytest.raises(NotFound, match=str(user_id)):
        call(store.preferences, user_id)

    assert store.status()["collections"]["user_preferences"] == 0


# ----------------------------------------------------------------------- wishlist


def test_wishlist_is_a_set_in_the_order_courses_were_added(store: ContentStore, user: UUID) -> None:
    first, second = uuid4(), uuid4()

    store.preferences.add_to_wishlist(user, first)
    store.preferences.add_to_wishlist(user, second)
    store.preferences.add_to_wishlist(user, first)

    assert store.preferences.get(user).wishlist == (first, second)


def test_remove_from_wishlist_removes_the_course_and_ignores_an_absent_one(
    store: ContentStore, user: UUID
) -> None:
    kept, removed = uuid4(), uuid4()
    store.preferences.add_to_wishlist(user, kept)
    store.preferences.add_to_wishlist(user, removed)

    store.preferences.remove_from_wishlist(user, removed)
    store.preferences.remove_from_wishlist(user, uuid4())

    assert store.preferences.get(user).wishlist == (kept,)


def test_a_malformed_course_id_raises_invalid_input(store: ContentStore, user: UUID) -> None:
    with pytest.raises(InvalidInput, match="nope"):
        store.preferences.add_to_wishlist(user, "nope")  # type: ignore[arg-type]


# ----------------------------------------------------------------- recently viewed


def test_recently_viewed_is_newest_first_without_duplicates(
    store: ContentStore, user: UUID
) -> None:
    a, b, c = uuid4(), uuid4(), uuid4()

    for course in (a, b, c, a):
        store.preferences.record_viewed(user, course)

    assert store.preferences.get(user).recently_viewed == (a, c, b)


def test_recently_viewed_keeps_only_the_newest_20(store: ContentStore, user: UUID) -> None:
    courses = [uuid4() for _ in range(25)]

    for course in courses:
        store.preferences.record_viewed(user, course)
    store.preferences.record_viewed(user, courses[10])

    recent = store.preferences.get(user).recently_viewed
    assert len(recent) == 20
    assert recent == (courses[10], *reversed(courses[11:]), *reversed(courses[5:10]))


def test_concurrent_record_viewed_leaves_no_duplicates_and_at_most_20(
    store: ContentStore, user: UUID
) -> None:
    courses = [uuid4() for _ in range(30)]

    def view(i: int) -> None:
        # Every thread views overlapping courses, so entries for one course race.
        for step in range(15):
            store.preferences.record_viewed(user, courses[(i * 7 + step) % len(courses)])

    run_in_threads(20, view)
    recent = store.preferences.get(user).recently_viewed

    assert len(recent) == 20
    assert len(set(recent)) == 20
    assert set(recent) <= set(courses)


def test_recently_viewed_and_wishlist_are_independent(store: ContentStore, user: UUID) -> None:
    course = uuid4()

    store.preferences.add_to_wishlist(user, course)
    store.preferences.record_viewed(user, course)
    store.preferences.remove_from_wishlist(user, course)

    view = store.preferences.get(user)
    assert (view.wishlist, view.recently_viewed) == ((), (course,))
