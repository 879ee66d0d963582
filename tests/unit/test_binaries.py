from __future__ import annotations

import pytest

from elearn_data.cluster import binaries
from elearn_data.errors import ConfigurationError


def test_missing_postgresql_binaries_name_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binaries, "_candidates", list)
    binaries.find_bindir.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=r"apt-get install -y postgresql"):
            binaries.find_bindir()
    finally:
        binaries.find_bindir.cache_clear()


def test_server_binaries_are_found_on_this_machine() -> None:
    bindir = binaries.find_bindir()
    assert all((bindir / name).is_file() for name in binaries.REQUIRED)
