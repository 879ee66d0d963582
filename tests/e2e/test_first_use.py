"""First use as a newcomer types it: `elearn up` in a fresh project folder, then the README's
example and docs/api.md's script, run from the project's folders without ELEARN_HOME.

The cluster is built by the `elearn` console script itself (no --base-port: it picks
the first free range below 32768), migrated and seeded with `small`, exactly as the
README's main job does; everything after runs against that seeded cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import make_home

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
API_GUIDE = ROOT / "docs" / "api.md"
ELEARN = Path(sys.executable).with_name("elearn")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Project:
    root: Path  # holds .elearn, as a checkout does after `elearn up`
    up: subprocess.CompletedProcess[str]


def newcomer_env(**extra: str) -> dict[str, str]:
    """The environment of a shell with no ELEARN_* variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEARN_")}
    # The package of this checkout, even where an editable install's finder is stale.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=newcomer_env(**extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    root = make_home("elearn-first-use-")
    (root / "examples").mkdir()
    try:
        up = run([str(ELEARN), "up"], root, COLUMNS="80")
        assert up.returncode == 0, up.stdout + up.stderr
        yield Project(root, up)
    finally:
        run([str(ELEARN), "cluster", "down", "--purge"], root)
        shutil.rmtree(root, ignore_errors=True)


def test_up_builds_under_dot_elearn_on_free_ports_below_32768_and_records_them(
    project: Project,
) -> None:
    home = project.root / ".elearn"
    state = json.loads((home / "cluster.json").read_text())
    ports = sorted(n["port"] for n in state["nodes"])
    assert len(ports) == 6
    assert state["base_port"] == ports[0] and ports[-1] < 32768
    first, last = map(int, re.search(r"ports: (\d+)-(\d+)", project.up.stderr).groups())
    assert first == state["base_port"] and last < 32768
    assert "healthy" in project.up.stdout
    settings = json.loads((home / "settings.json").read_text())
    urls = [u for s in settings["shards"].values() for u in [s["primary"], *s["replicas"]]]
    assert {int(p) for u in urls for p in re.findall(r":(\d+)", u)} <= set(ports)


def test_the_readmes_example_runs_right_after_up_from_a_subfolder(project: Project) -> None:
    [block] = python_blocks(README)
    proc = run([sys.executable, "-c", block], project.root / "examples")
    assert proc.returncode == 0, proc.stderr


def test_the_api_guide_runs_right_after_up_as_one_script(project: Project) -> None:
    blocks = python_blocks(API_GUIDE)
    assert len(blocks) >= 8
    proc = run([sys.executable, "-c", "\n".join(blocks)], project.root)
    assert proc.returncode == 0, proc.stderr
    assert "unknown region 'atlantis'" in proc.stdout


def test_stats_keep_every_figure_at_80_columns(project: Project) -> None:
    proc = run([str(ELEARN), "stats", "--json"], project.root)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    table = run([str(ELEARN), "stats"], project.root, COLUMNS="80")
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    cells = set(re.findall(r"[\w.]+", table.stdout))
    for row in figures:
        for key, value in row.items():  # the shard names head the columns
            assert key == "shard" or key in cells
            assert str(value) in cells, (key, value)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the stderr lines a user reads (log warnings and progress bars aside).

    Checks there is no traceback and no SQLAlchemy background link anywhere.
    """
    assert "Traceback" not in proc.stderr
    assert "sqlalche.me" not in proc.stderr + proc.stdout
    noise = ("WARNING ", "prepare ")  # e.g. the in-process content store's notice
    return [
        line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(noise)
    ]


def test_cli_errors_are_one_line_with_a_hint(project: Project, tmp_path: Path) -> None:
    proc = run([str(ELEARN), "migrate", "--revision", "nope"], project.root)
    assert proc.returncode == 1
    [line] = no_traceback(proc)
    assert line.startswith("error: cannot migrate to revision 'nope'")

    proc = run([str(ELEARN), "health"], project.root, ELEARN_SHARDS='{"na": {"primary": ')
    assert proc.returncode == 1
    error, hint = no_traceback(proc)
    assert error.startswith("error: invalid settings") and "shards" in error
    assert hint.startswith("hint:") and "elearn up" in hint

    # Outside any project: the message names the folder searched and ELEARN_HOME.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run([str(ELEARN), "stats"], elsewhere)
    assert proc.returncode == 1
    error, hint = no_traceback(proc)
    assert str(elsewhere) in error and "ELEARN_HOME" in error
    assert "elearn up" in hint

    proc = run([str(ELEARN), "cluster", "start", "eu", "--role", "replica"], project.root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "eu-1 already running"


def test_a_stopped_cluster_gives_one_line_and_up_brings_it_back(project: Project) -> None:
    down = run([str(ELEARN), "cluster", "down"], project.root)
    assert down.returncode == 0, down.stderr
    try:
        for command in (["stats"], ["migrate"], ["seed"]):
            proc = run([str(ELEARN), *command], project.root)
            assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
            lines = no_traceback(proc)
            assert len(lines) == 2, (command, lines)
            assert lines[0].startswith("error: shard ") and "unavailable" in lines[0]
            assert lines[1].startswith("hint:") and "elearn up" in lines[1]
        proc = run([str(ELEARN), "recover"], project.root)
        assert proc.returncode == 2  # shards unreachable: nothing could be settled
        assert proc.stdout.strip().endswith("unreachable: apac, eu, na")
        [hint] = no_traceback(proc)
        assert hint.startswith("hint:") and "elearn up" in hint
        proc = run([str(ELEARN), "cluster", "status"], project.root)
        assert proc.returncode == 2  # a node is down
        proc = run([str(ELEARN), "health"], project.root)
        assert proc.returncode == 1
        no_traceback(proc)
        assert "elearn up" in proc.stdout
    finally:
        again = run([str(ELEARN), "up"], project.root)
    assert again.returncode == 0, again.stderr
    assert "kept the existing data" in again.stdout
