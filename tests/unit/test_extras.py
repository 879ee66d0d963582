"""The extras: each optional module names an extra the package declares, and the error says it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from elearn_data import errors, extras

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _optional() -> dict[str, list[str]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return dict(project["optional-dependencies"])


def test_every_optional_module_belongs_to_a_declared_extra_not_to_the_core() -> None:
    optional = _optional()
    core = " ".join(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]).lower()
    for module, extra in extras.EXTRA_OF.items():
        assert extra in optional, (module, extra)
        distribution = {"jwt": "pyjwt", "mongomock_ng": "mongomock-ng"}.get(module, module)
        assert distribution not in core, module
        assert any(distribution in req.lower() for req in optional[extra]), (module, extra)


def test_dev_pulls_every_extra_and_all_pulls_what_elearn_up_needs() -> None:
    optional = _optional()
    assert "elearn-data[all]" in optional["dev"]
    [everything] = optional["all"]
    named = set(everything.removeprefix("elearn-data[").removesuffix("]").split(","))
    assert named == set(optional) - {"all", "dev", "notebook"}


def test_a_missing_module_raises_missing_extra_naming_the_extra() -> None:
    with pytest.raises(errors.MissingExtra) as info:
        extras.need("db.analytics", "elearn_no_such_module", extra="analytics")
    assert "pip install 'elearn-data[analytics]'" in str(info.value)
    assert "db.analytics needs elearn_no_such_module" in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, errors.ConfigurationError)
    assert info.value.name == "elearn_no_such_module"
    with pytest.raises(errors.MissingExtra, match=r"elearn-data\[all\]"):
        extras.require("elearn_no_such_module", "something")
    assert extras.require("json", "something").dumps([]) == "[]"
    extras.need("anything", "json", "sqlalchemy")  # present: nothing raised
