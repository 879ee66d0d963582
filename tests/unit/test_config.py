from __future__ import annotations

import json
from pathlib import Path

import pytest

from elearn_data.config import Settings, load_settings, redact, url_hosts
from elearn_data.errors import ConfigurationError

URL = "postgresql://app@127.0.0.1:5432/elearn"


def shards(**overrides: dict[str, object]) -> dict[str, dict[str, object]]:
    base: dict[str, dict[str, object]] = {"na": {"primary": URL}, "eu": {"primary": URL}}
    base["apac"] = {"primary": URL}
    base.update(overrides)
    return base


def test_no_configuration_names_the_missing_shards(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no shards configured.*run `elearn up`"):
        Settings(home=tmp_path)


def test_shard_without_primary_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"shard 'eu' has no primary URL"):
        Settings(shards=shards(eu={"replicas": [URL]}))


def test_region_mapped_to_missing_shard_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"region 'asia' maps to shard 'apac'"):
        Settings(shards={"na": {"primary": URL}, "eu": {"primary": URL}})


def test_unmapped_region_is_named() -> None:
    mapping = {
        "north_america": "na",
        "south_america": "na",
        "europe": "eu",
        "africa": "eu",
        "asia": "apac",
    }
    with pytest.raises(ConfigurationError, match=r"region 'oceania' is not mapped"):
        Settings(shards=shards(), region_shards=mapping)


def test_invalid_value_is_reported_as_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"pool\.size"):
        load_settings(shards=shards(), pool={"size": 0})


def test_password_in_url_moves_into_a_secret() -> None:
    settings = Settings(shards=shards(na={"primary": "postgresql://app:s3cr3t@h1:1,h2:2/db"}))
    assert "s3cr3t" not in settings.shards["na"].primary  # type: ignore[operator]
    assert "s3cr3t" not in repr(settings)
    assert settings.shard_password("na") == "s3cr3t"
    assert url_hosts(settings.shards["na"].primary or "") == [("h1", 1), ("h2", 2)]
    assert redact("postgresql://u:pw@h:1/db") == "postgresql://u:***@h:1/db"


def test_environment_variables_configure_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEARN_SHARDS", json.dumps(shards()))
    monkeypatch.setenv("ELEARN_POOL__SIZE", "7")
    monkeypatch.setenv("ELEARN_DURABILITY", "sync")
    settings = Settings()
    assert settings.pool.size == 7
    assert settings.durability == "sync"
    assert settings.shard_names == ("apac", "eu", "na")


def test_settings_file_of_the_embedded_cluster_is_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(
        json.dumps({"shards": shards(), "db_password": "pw", "durability": "sync"})
    )
    settings = Settings(home=tmp_path)
    assert settings.durability == "sync"
    assert settings.shard_password("eu") == "pw"
    explicit = Settings(home=tmp_path, durability="async")
    assert explicit.durability == "async"
