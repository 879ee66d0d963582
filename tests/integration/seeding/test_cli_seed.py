"""``elearn seed`` through typer's runner (the command function, as app.py mounts it)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from elearn_data.cli import seed as seed_command
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("seed")(seed_command.seed)
    app.command("noop")(lambda: None)  # two commands: "seed" stays a subcommand
    return app


@pytest.fixture
def home(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEARN_HOME", str(cluster.home))


def test_the_seed_command_reports_counts_timings_and_the_password(
    clean: Database, home: None
) -> None:
    result = CliRunner().invoke(_app(), ["seed", "--scale", "small", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["tables"]["users"] == 120
    assert report["tables"]["transactions"] == 150
    assert report["password"] == "elearn-seed-password"
    assert set(report["phases"]) >= {"users", "catalog", "enrollments", "payments", "content"}


def test_the_seed_command_refuses_a_seeded_database_without_reset(
    clean: Database, home: None
) -> None:
    runner = CliRunner()
    assert runner.invoke(_app(), ["seed", "--seed", "4"]).exit_code == 0
    refused = runner.invoke(_app(), ["seed", "--seed", "4"])
    assert refused.exit_code == 1
    assert "--reset" in refused.output
    again = runner.invoke(_app(), ["seed", "--seed", "4", "--reset"])
    assert again.exit_code == 0, again.output
    assert "elearn-seed-password" in again.output
