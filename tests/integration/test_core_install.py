"""``pip install elearn-data`` (no extras) is a working library for a backend service.

The wheel is built and installed with its core dependencies only into a fresh
venv (no system site-packages, not the checkout): ``import elearn_data``,
``connect()`` and repository calls work against the session's cluster, none of
the extras' modules is imported, and the parts that need an extra say which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from elearn_data.config import Settings
from tests.support import build_wheel

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_MODULES = ("pandas", "faker", "numpy", "typer", "rich", "mongomock_ng", "duckdb", "fastapi")

PROBE = textwrap.dedent(
    """
    import json, sys, uuid
    import elearn_data
    from elearn_data import errors

    out = {"after_import": sorted(m for m in sys.argv[2].split(",") if m in sys.modules)}
    settings = elearn_data.Settings(
        home=sys.argv[1], argon2_allow_weak=True, argon2_time_cost=1, argon2_memory_kib=8192
    )
    with elearn_data.connect(settings) as db:
        email = f"core-{uuid.uuid4().hex[:8]}@example.org"
        user = db.users.register(email=email, password="core-install-pw", first_name="Core",
                                 last_name="Only", region="europe")
        out["found"] = db.users.find_by_email(email).id == user
        out["got"] = db.users.get(user).email == email
        out["courses"] = type(db.catalog.search(limit=5)).__name__
        db.wait_idle()
        out["after_calls"] = sorted(m for m in sys.argv[2].split(",") if m in sys.modules)
        errors_seen = {}
        for name, call in (("analytics", lambda: db.analytics.sql("SELECT 1 AS x")),
                           ("preferences", lambda: db.preferences.get(user))):
            try:
                call()
            except errors.MissingExtra as exc:
                errors_seen[name] = [str(exc), isinstance(exc, ImportError)]
        out["errors"] = errors_seen
        db.users.erase(user)
    print(json.dumps(out))
    """
)


@pytest.mark.timeout(300)
def test_the_wheel_without_extras_connects_and_imports_no_extra(
    migrated: Settings, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the new venv: the core dependencies only.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & {"pandas", "faker", "numpy", "typer", "rich", "mongomock-ng"}

    probe = subprocess.run(
        [str(python), "-c", PROBE, str(migrated.home), ",".join(EXTRAS_MODULES)],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: the package comes from the wheel
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert out["after_import"] == [] and out["after_calls"] == []
    assert out["found"] and out["got"] and out["courses"] in ("list", "tuple")
    analytics, preferences = out["errors"]["analytics"], out["errors"]["preferences"]
    assert "elearn-data[analytics]" in analytics[0] and analytics[1]
    assert "elearn-data[mongo-mock]" in preferences[0] and preferences[1]

    cli = subprocess.run(
        [str(venv / "bin" / "elearn"), "--help"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert cli.returncode != 0
    assert "pip install 'elearn-data[cli]'" in cli.stderr
