"""Every error the API raises is importable from elearn_data.errors."""

from __future__ import annotations

import uuid

import pytest

from elearn_data import errors, ids


def test_foreign_id_lives_in_errors_and_ids_keeps_its_alias() -> None:
    assert "ForeignId" in errors.__all__
    assert errors.ForeignId is ids.ForeignId
    assert issubclass(errors.ForeignId, errors.NotFound)
    with pytest.raises(errors.ForeignId, match="not issued by elearn_data"):
        ids.decode(uuid.uuid4())
