"""ELEARN_HOME discovery: the nearest ``.elearn`` folder at or above the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from elearn_data.config import discover_home, elearn_home, load_settings
from elearn_data.errors import ConfigurationError


def test_the_nearest_elearn_folder_above_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".elearn").mkdir(parents=True)
    (project / "examples" / "deep").mkdir(parents=True)
    monkeypatch.delenv("ELEARN_HOME", raising=False)
    monkeypatch.chdir(project / "examples" / "deep")

    assert discover_home() == project / ".elearn"
    assert elearn_home() == project / ".elearn"


def test_the_innermost_elearn_folder_wins(tmp_path: Path) -> None:
    (tmp_path / ".elearn").mkdir()
    inner = tmp_path / "a" / "b"
    (inner / ".elearn").mkdir(parents=True)
    (inner / "c").mkdir()

    assert discover_home(inner / "c") == inner / ".elearn"
    assert discover_home(tmp_path / "a") == tmp_path / ".elearn"


def test_without_any_elearn_folder_it_is_dot_elearn_in_the_start_folder(tmp_path: Path) -> None:
    start = tmp_path / "work"
    start.mkdir()
    (tmp_path / ".elearn").write_text("a file, not a home")
    if any((p / ".elearn").is_dir() for p in tmp_path.parents):
        pytest.fail("a .elearn folder above the test's temporary folder would be found")

    assert discover_home(start) == start / ".elearn"


def test_elearn_home_wins_over_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".elearn").mkdir()
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("ELEARN_HOME", str(elsewhere))
    monkeypatch.chdir(tmp_path)

    assert elearn_home() == elsewhere


def test_a_missing_cluster_names_the_searched_folder_and_elearn_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ELEARN_HOME", raising=False)
    monkeypatch.delenv("ELEARN_SHARDS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "ELEARN_HOME" in message
    assert "elearn up" in message


def test_malformed_elearn_shards_json_is_one_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELEARN_SHARDS", '{"na": {"primary": ')
    with pytest.raises(ConfigurationError, match=r"invalid settings: .*shards"):
        load_settings()
