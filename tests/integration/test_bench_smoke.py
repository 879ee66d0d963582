"""``elearn bench`` in miniature: every benchmark runs and reports, so the command never breaks.

Tiny sizes (``--smoke``), no target and no time is asserted: this is a
functional test of the benchmark machinery against the session's cluster (on
scratch databases it creates and drops), not a measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from elearn_data.bench import BENCHMARKS
from elearn_data.cli.bench import bench
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings

REQUIRED = {"name", "value", "baseline", "ratio", "target", "meets_target", "unit"}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(bench)

    @app.callback()
    def _root() -> None:
        """The command under test, mounted as ``elearn bench`` would be."""

    return app


def _scratch_databases(cluster: LocalCluster) -> set[str]:
    state = cluster.state()
    found: set[str] = set()
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'elearn_bench_%'")
                found.update(row[0] for row in cur.fetchall())
        finally:
            conn.close()
    return found


def test_bench_smoke_reports_every_benchmark_as_json_and_drops_its_scratch_databases(
    cluster: LocalCluster, migrated: Settings, tmp_path: Path
) -> None:
    before = _scratch_databases(cluster)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        _app(),
        ["bench", "--smoke", "--json", str(out)],
        env={"ELEARN_HOME": str(cluster.home)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output

    payload = json.loads(out.read_text(encoding="utf-8"))
    rows = payload["results"]
    assert [row["name"] for row in rows] == list(BENCHMARKS)
    for row in rows:
        assert set(row) >= REQUIRED, row
        assert row["error"] is None, row
        assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
        assert row["unit"] in {"ops/s", "rows/s", "ms"}
        assert row["peak_rss_mib"] > 0
        if row["target"] is None:
            assert row["meets_target"] is None
        else:
            assert row["meets_target"] is (row["ratio"] >= row["target"])
    for name in BENCHMARKS:
        assert name in result.output
    # The canned analytics on DuckDB gave exactly the fan-out's frames, and the row says
    # which engine was faster for each.
    canned = next(row for row in rows if row["name"] == "canned_on_duckdb")
    assert canned["detail"]["results_equal"] is True, canned["detail"]
    assert "enrollments_by_region: duckdb" in result.output
    # The run's own databases are gone.
    assert _scratch_databases(cluster) == before


def test_bench_refuses_a_cluster_it_cannot_create_scratch_databases_on(
    tmp_path: Path,
) -> None:
    home = tmp_path / "no-cluster"
    home.mkdir()
    (home / "settings.json").write_text(
        json.dumps(
            {
                "shards": {
                    name: {"primary": f"postgresql://app@127.0.0.1:1/{name}"}
                    for name in ("na", "eu", "apac")
                }
            }
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(_app(), ["bench", "--smoke"], env={"ELEARN_HOME": str(home)})
    assert result.exit_code == 1
    assert "embedded cluster" in result.output
