"""The one place pymongo errors become domain errors (the classes live in elearn_data.errors).

Callers never catch pymongo (or mongomock) exceptions: every repository call runs
inside :func:`driver_errors`, which re-raises them as the package's own tree with
``raise ... from exc`` so the driver's cause stays in the traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from elearn_data.errors import ContentUnavailable, Duplicate


@contextmanager
def driver_errors(operation: str, *, duplicate: str | None = None) -> Iterator[None]:
    """Translate pymongo errors raised inside the block into domain errors.

    Args:
        operation: What was attempted (``"content.add_video"``), named in messages.
        duplicate: The message of the :class:`~elearn_data.errors.Duplicate`
            raised when a unique index rejects the write.

    Raises:
        Duplicate: a unique index rejected the write.
        ContentUnavailable: the server could not be reached or refused the call.
    """
    try:
        yield
    except DuplicateKeyError as exc:
        # Checked first: DuplicateKeyError is also an OperationFailure.
        raise Duplicate(duplicate or f"{operation}: duplicate key") from exc
    except ConnectionFailure as exc:
        # Includes ServerSelectionTimeoutError, AutoReconnect and NetworkTimeout.
        raise ContentUnavailable(f"{operation}: MongoDB is unreachable: {exc}") from exc
    except PyMongoError as exc:
        # Authorization failures, write concern errors, unsupported server versions:
        # nothing a caller can handle better than "the content store failed".
        raise ContentUnavailable(f"{operation}: MongoDB refused the call: {exc}") from exc


__all__ = ["driver_errors"]
