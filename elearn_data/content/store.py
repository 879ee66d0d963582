"""ContentStore: the MongoDB connection of the content repositories.

A store owns one connection under its own mongoengine alias
(``elearn-content-<hex>``), registered when the store is built and removed by
:meth:`ContentStore.close`. Nothing is registered or opened at import time.

Backends:

- ``settings.mongo_uri`` set: a real MongoDB (pymongo connects lazily, so
  building a store never blocks; an unreachable server surfaces as
  :class:`~elearn_data.errors.ContentUnavailable` on use and as
  ``reachable: False`` in :meth:`ContentStore.status`).
- otherwise: an in-process ``mongomock_ng.MongoClient``, private to the store.
  The first such store of the process logs one warning; ``status()`` reports
  ``backend: "mongomock"`` every time.

Several stores coexist in one process: each has its own client (a distinct
``appname`` keeps mongoengine from handing one store's client to another, which
would also let one store's ``close()`` close the other's client), and the
repositories use the store's own collections, never a document class's global
binding.

Indexes are declared in :mod:`elearn_data.content.documents`. A store creates
them before its first write (unique content ids and user ids depend on them) or
when :meth:`ContentStore.ensure_indexes` is called, never at construction.

For tests, ``store.faults`` (a :class:`FaultInjector`) makes the next writes fail
with ContentUnavailable before anything is sent to the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import mongoengine
from mongoengine import Document
from mongoengine.connection import get_connection
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import InvalidURI

from elearn_data.config import Settings, redact
from elearn_data.content.documents import DOCUMENT_CLASSES, collection_of, index_models
from elearn_data.content.errors import driver_errors
from elearn_data.content.repository import (
    WRITE_OPERATIONS,
    ContentRepository,
    PreferencesRepository,
)
from elearn_data.errors import ConfigurationError, ContentUnavailable, InvalidInput
from elearn_data.extras import require

logger = logging.getLogger(__name__)

Backend = Literal["mongodb", "mongomock"]

ALIAS_PREFIX: Final = "elearn-content-"

_in_process_warned = False
_in_process_warned_lock = threading.Lock()


def _warn_in_process_once() -> None:
    global _in_process_warned  # noqa: PLW0603 - "once per process" is process state
    with _in_process_warned_lock:
        if _in_process_warned:
            return
        _in_process_warned = True
    logger.warning(
        "ELEARN_MONGO_URI is not set: content and preferences are kept in process "
        "memory (mongomock_ng) and are lost when the process exits"
    )


# ------------------------------------------------------------------ fault injection


@dataclass
class _Fault:
    operation: str | None
    remaining: int


class FaultInjector:
    """Makes a store's next writes fail, to test flows that span two stores.

    Usage::

        store.faults.fail_next()                                  # the next write
        store.faults.fail_next(2, operation="content.delete_for_course")

    An armed fault raises :class:`ContentUnavailable` when a matching write
    starts, before anything is sent to MongoDB, so the write is not performed.
    Operation names are ``"<repository>.<method>"`` (see ``WRITE_OPERATIONS``).
    Reads are never failed. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def fail_next(self, count: int = 1, *, operation: str | None = None) -> None:
        """Make the next ``count`` writes (of ``operation`` only, if given) fail.

        Raises:
            InvalidInput: count is not positive or the operation is not a write.
        """
        if count < 1:
            raise InvalidInput(f"count must be at least 1, got {count}")
        if operation is not None and operation not in WRITE_OPERATIONS:
            known = ", ".join(sorted(WRITE_OPERATIONS))
            raise InvalidInput(f"unknown write operation {operation!r}; known: {known}")
        with self._lock:
            self._faults.append(_Fault(operation, count))

    def clear(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> int:
        """How many injected failures are still armed."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def check(self, operation: str) -> None:
        """Raise ContentUnavailable if a fault is armed for ``operation`` (and use it up)."""
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    raise ContentUnavailable(f"{operation}: injected fault")


# ----------------------------------------------------------------------- gateway


class Gateway:
    """What the repositories need from their store.

    Collections of the store's database, and the ``reading``/``writing`` blocks
    every call runs in: they refuse work after close, fire injected faults,
    create indexes before the first write, serialize access to mongomock and
    translate driver errors.
    """

    def __init__(
        self, database: Database[dict[str, Any]], faults: FaultInjector, *, in_process: bool
    ) -> None:
        self._database = database
        self._faults = faults
        # mongomock applies an update as Python read-modify-write on shared dicts
        # (and keeps per-collection scratch state), so concurrent calls could
        # lose updates; a real server makes each single-document update atomic.
        self._lock: AbstractContextManager[Any] = threading.RLock() if in_process else nullcontext()
        self._indexes_lock = threading.Lock()
        self._indexes_ready = False
        self._closed = False

    def collection(self, document: type[Document]) -> Collection[dict[str, Any]]:
        """Return ``document``'s collection in this store's database."""
        return collection_of(document, self._database)

    @contextmanager
    def reading(self, operation: str) -> Iterator[None]:
        """Run a read: open store, serialized on mongomock, driver errors translated."""
        self._check_open(operation)
        with self._lock, driver_errors(operation):
            yield

    @contextmanager
    def writing(self, operation: str, *, duplicate: str | None = None) -> Iterator[None]:
        """Run a write: like :meth:`reading`, after injected faults and index creation."""
        self._check_open(operation)
        self._faults.check(operation)
        if not self._indexes_ready:
            self._create_indexes(f"{operation} (creating indexes)", force=False)
        with self._lock, driver_errors(operation, duplicate=duplicate):
            yield

    def ensure_indexes(self) -> None:
        """Create every declared index (idempotent on the server)."""
        self._check_open("ensure_indexes")
        self._create_indexes("ensure_indexes", force=True)

    def _create_indexes(self, operation: str, *, force: bool) -> None:
        with self._indexes_lock, self._lock, driver_errors(operation):
            if self._indexes_ready and not force:
                return  # another thread's first write got here first
            for document in DOCUMENT_CLASSES:
                collection = self.collection(document)
                for keys, options in index_models(document):
                    collection.create_index(keys, **options)
            self._indexes_ready = True

    def ping(self) -> None:
        """Round-trip to the server (raises the driver's error when unreachable)."""
        self._database.command("ping")

    def close(self) -> None:
        """Refuse every later call."""
        self._closed = True

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise ContentUnavailable(f"{operation}: the content store is closed")


# ------------------------------------------------------------------------- store


def _client_options(settings: Settings, uri: str | None, alias: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Standard (subtype 4) UUIDs, readable by every driver; also silences
        # mongoengine's pythonLegacy fallback warning.
        "uuidRepresentation": "standard",
        "tz_aware": True,
        # Unique per store: see the module docstring.
        "appname": f"elearn_data/{alias}",
    }
    if uri is None:
        # The in-process store is the [mongo-mock] extra: a service with a real
        # MongoDB (mongo_uri) never loads it.
        mock = require("mongomock_ng", "the in-process content store (no mongo_uri set)")
        options["mongo_client_class"] = mock.MongoClient
        return options
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigurationError(
            f"invalid mongo_uri {redact(uri)}: it must start with mongodb:// or mongodb+srv://"
        )
    # pymongo waits 30 s for a server by default; a store should fail as fast as
    # the PostgreSQL side does. An explicit URI option wins (keyword arguments
    # would override it, so they are only added when the URI is silent). The
    # query string is read directly: pymongo's parser would resolve SRV records.
    in_uri = {key.lower() for key in parse_qs(urlsplit(uri).query)}
    timeout_ms = settings.connect_timeout_s * 1000
    for name in ("serverSelectionTimeoutMS", "connectTimeoutMS"):
        if name.lower() not in in_uri:
            options[name] = timeout_ms
    return options


class ContentStore:
    """The content store: MongoDB (or in-process mongomock) plus its repositories.

    ``store.content`` and ``store.preferences`` are the repositories; use the store
    as a context manager or call :meth:`close`.
    """

    def __init__(self, settings: Settings) -> None:
        """Register this store's mongoengine alias and client (no round trip yet).

        Raises:
            ConfigurationError: ``settings.mongo_uri`` is not a valid MongoDB URI.
            ContentUnavailable: the client cannot be created (e.g. an SRV record
                that does not resolve).
        """
        # An empty ELEARN_MONGO_URI means "not set", as for every other variable.
        uri = (settings.mongo_uri.get_secret_value() if settings.mongo_uri else "") or None
        self.alias: Final[str] = f"{ALIAS_PREFIX}{uuid4().hex}"
        self.backend: Final[Backend] = "mongodb" if uri else "mongomock"
        self.database_name: Final[str] = settings.mongo_db
        self._address = redact(uri) if uri else None
        options = _client_options(settings, uri, self.alias)
        if uri is None:
            _warn_in_process_once()
        try:
            mongoengine.connect(db=settings.mongo_db, alias=self.alias, host=uri, **options)
            # settings.mongo_db names the database even when the URI has a path:
            # there the path only selects the authentication database.
            database: Database[dict[str, Any]] = get_connection(self.alias)[settings.mongo_db]
        except (InvalidURI, PyMongoConfigurationError, ValueError, TypeError) as exc:
            # pymongo rejects malformed URIs and option values with these.
            mongoengine.disconnect(self.alias)
            raise ConfigurationError(f"invalid mongo_uri {self._address}: {exc}") from exc
        except mongoengine.connection.ConnectionFailure as exc:
            mongoengine.disconnect(self.alias)
            raise ContentUnavailable(
                f"cannot create a MongoDB client for {self._address}: {exc}"
            ) from exc
        self.faults: Final = FaultInjector()
        self._gateway = Gateway(database, self.faults, in_process=uri is None)
        self._content = ContentRepository(self._gateway)
        self._preferences = PreferencesRepository(self._gateway)
        self._closed = False

    @property
    def content(self) -> ContentRepository:
        """Lesson material: videos, documents, quizzes."""
        return self._content

    @property
    def preferences(self) -> PreferencesRepository:
        """Learner preferences, wishlists, recently viewed courses."""
        return self._preferences

    def ensure_indexes(self) -> None:
        """Create the declared indexes now (writes also do it on first use).

        Raises:
            ContentUnavailable: MongoDB cannot be reached or the store is closed.
        """
        self._gateway.ensure_indexes()

    def status(self) -> dict[str, Any]:
        """Report backend, reachability and document counts; never raises.

        Returns:
            ``backend`` ("mongodb" or "mongomock"), ``address`` (URI without
            password, None in process), ``database``, ``reachable``,
            ``collections`` (collection name -> estimated document count) and
            ``error`` (None, or why the store is unreachable).
        """
        report: dict[str, Any] = {
            "backend": self.backend,
            "address": self._address,
            "database": self.database_name,
            "reachable": False,
            "collections": {},
            "error": None,
        }
        try:
            with self._gateway.reading("status"):
                self._gateway.ping()
                counts = {
                    document._get_collection_name(): self._gateway.collection(
                        document
                    ).estimated_document_count()
                    for document in DOCUMENT_CLASSES
                }
        # A health report lists a failing store; it must never fail itself,
        # whatever the driver (or mongomock) raises.
        except Exception as exc:
            report["error"] = str(exc)
            return report
        report["reachable"] = True
        report["collections"] = counts
        return report

    def clear(self) -> None:
        """Delete every document of every collection (tests and re-seeding).

        Raises:
            ContentUnavailable: MongoDB cannot be reached or the store is closed.
        """
        with self._gateway.writing("clear"):
            for document in DOCUMENT_CLASSES:
                self._gateway.collection(document).delete_many({})

    def close(self) -> None:
        """Close the client and unregister the alias (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._gateway.close()
        mongoengine.disconnect(self.alias)

    def __enter__(self) -> ContentStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ContentStore(backend={self.backend!r}, address={self._address!r}, "
            f"database={self.database_name!r}, alias={self.alias!r})"
        )


__all__ = ["ContentStore", "FaultInjector", "Gateway"]
