"""Course content and learner preferences, stored in MongoDB through mongoengine.

Build a :class:`ContentStore` from :class:`~elearn_data.config.Settings`; it owns
one connection (a real MongoDB when ``ELEARN_MONGO_URI`` is set, an in-process
mongomock_ng otherwise) and exposes two repositories:

- ``store.content`` (:class:`ContentRepository`): videos, documents and quizzes
  of lessons, with atomic view and download counters;
- ``store.preferences`` (:class:`PreferencesRepository`): learning preferences,
  notification switches, wishlist and recently viewed courses, each changed by
  a partial, atomic update.

Reads return frozen views (:class:`ContentView`, :class:`PreferencesView`);
errors are the package's own (NotFound, Duplicate, InvalidInput and
:class:`ContentUnavailable`). Importing this package connects to nothing.
"""

from elearn_data.content.repository import (
    WRITE_OPERATIONS,
    ContentRepository,
    PreferencesRepository,
)
from elearn_data.content.store import ContentStore, FaultInjector
from elearn_data.content.views import (
    ContentType,
    ContentView,
    LearningView,
    NotificationsView,
    PreferencesView,
    QuizQuestion,
    Subtitle,
)
from elearn_data.errors import ContentUnavailable  # re-exported: defined with every other error

__all__ = [
    "WRITE_OPERATIONS",
    "ContentRepository",
    "ContentStore",
    "ContentType",
    "ContentUnavailable",
    "ContentView",
    "FaultInjector",
    "LearningView",
    "NotificationsView",
    "PreferencesRepository",
    "PreferencesView",
    "QuizQuestion",
    "Subtitle",
]
