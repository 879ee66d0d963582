"""The built wheel carries the migrations: Alembic's environment, every revision, every SQL file.

`.ci/run` goes further: it installs the wheel into a fresh venv outside the checkout
and runs `elearn migrate` and `elearn migrate status` with it against a cluster.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.support import build_wheel

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "elearn_data" / "alembic"


@pytest.mark.timeout(300)
def test_the_wheel_holds_the_alembic_environment_every_revision_and_every_sql_file(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {
        str(path.relative_to(ROOT))
        for pattern in ("env.py", "script.py.mako", "versions/*.py", "sql/*/*.sql")
        for path in MIGRATIONS.glob(pattern)
    }
    assert len([n for n in expected if "/versions/" in n]) >= 4
    assert len([n for n in expected if n.endswith(".sql")]) >= 50
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith("alembic/") or "__pycache__" in n]
