"""docs/api.md runs: its Python blocks are executed in order against the test cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_example_in_the_api_guide_runs(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 8
    monkeypatch.setenv("ELEARN_HOME", str(cluster.home))
    # The guide connects with settings from ELEARN_HOME; use the test settings' cheap
    # argon2 parameters and content database so the run is fast and isolated.
    monkeypatch.setenv("ELEARN_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ELEARN_ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("ELEARN_ARGON2_ALLOW_WEAK", "true")  # below OWASP's minimum: tests only
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"docs/api.md block {number} failed: {exc!r}\n{block}") from exc
