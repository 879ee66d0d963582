"""Fixtures of the content store suite: mongomock always, a real MongoDB when asked.

Every test that takes ``store`` (or ``make_store``) runs on an in-process
mongomock_ng store. When ``ELEARN_TEST_MONGO_URI`` is set (for example
``mongodb://127.0.0.1:27017``) it runs a second time against that server, in a
throwaway database (``elearn_test_<hex>``) dropped at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pymongo
import pytest

from elearn_data.content import ContentStore
from tests.integration.content.factories import MONGO_URI_ENV, make_settings


def _backends() -> list[str]:
    return ["mongomock", "mongodb"] if os.environ.get(MONGO_URI_ENV) else ["mongomock"]


@pytest.fixture(params=_backends())
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], ContentStore]]:
    """Build stores on this test's backend, each on its own database; all closed after."""
    uri = os.environ[MONGO_URI_ENV] if request.param == "mongodb" else None
    stores: list[ContentStore] = []

    def build() -> ContentStore:
        store = ContentStore(make_settings(uri, f"elearn_test_{uuid4().hex[:12]}"))
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()
        if uri is not None:
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
            try:
                client.drop_database(store.database_name)
            finally:
                client.close()


@pytest.fixture
def store(make_store: Callable[[], ContentStore]) -> ContentStore:
    """A fresh, empty content store on this test's backend."""
    return make_store()
