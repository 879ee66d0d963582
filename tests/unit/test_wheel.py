"""The built wheel carries the migrations: Alembic's environment, every revision, every SQL file.

`.ci/run` goes further: it installs the wheel into a fresh venv outside the checkout
and runs `elearn migrate` and `elearn migrate status` with it against a cluster.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "elearn_data" / "alembic"


@pytest.mark.timeout(300)
def test_the_wheel_holds_the_alembic_environment_every_revision_and_every_sql_file(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("elearn_data-*.whl")
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
