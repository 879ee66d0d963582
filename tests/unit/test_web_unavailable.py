"""Both kinds of Unavailable answer 503 over HTTP and name no host or driver detail."""

from __future__ import annotations

import json

from elearn_data import errors
from elearn_data.web.errors import domain_response


def test_an_unavailable_store_is_503_naming_its_class_only() -> None:
    content = domain_response(
        errors.ContentUnavailable("content.get: MongoDB is unreachable: db.internal:27017")
    )
    assert content.status_code == 503
    assert json.loads(bytes(content.body)) == {
        "error": "ContentUnavailable",
        "message": "the content store is unavailable",
    }
    shard = domain_response(errors.ShardUnavailable("eu", "server closed the connection"))
    assert shard.status_code == 503
    assert json.loads(bytes(shard.body)) == {
        "error": "ShardUnavailable",
        "message": "shard 'eu' is unavailable",
    }
