"""``elearn bench``: the platform against its baselines, measured side by side in one run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from elearn_data.cli.common import console, domain_errors, err_console
from elearn_data.config import load_settings
from elearn_data.extras import need

if TYPE_CHECKING:
    from elearn_data.bench import BenchReport, BenchResult

WIDE = 132


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f} ms"
    return f"{value:,.0f} {unit}"


def _verdict(result: BenchResult) -> str:
    if result.error is not None:
        return "[bold red]failed[/]"
    if result.meets_target is None:
        return "[dim]report[/]"
    return "[green]yes[/]" if result.meets_target else "[bold red]no[/]"


def report_table(report: BenchReport) -> Table:
    """Return the report as a rich table (one row per benchmark)."""
    table = Table(
        title=f"elearn bench ({report.profile}): medians of interleaved rounds",
        caption="ratio: median of the per-round ratios, throughput(measured)/throughput(baseline) "
        "(ms rows: baseline time / measured time), higher is better; range: lowest-highest round",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("benchmark", no_wrap=True)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("baseline", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("range", justify="right", no_wrap=True)
    table.add_column("target", justify="right", no_wrap=True)
    table.add_column("met", no_wrap=True)
    table.add_column("peak RSS", justify="right", no_wrap=True)
    table.add_column("rounds", justify="right", no_wrap=True)
    for r in report.results:
        table.add_row(
            r.name,
            _figure(r.value, r.unit),
            _figure(r.baseline, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            "-" if r.ratio_min is None else f"{r.ratio_min:.2f}-{r.ratio_max:.2f}",
            "-" if r.target is None else f">= {r.target:.2f}",
            _verdict(r),
            f"{r.peak_rss_mib:.0f} MiB",
            str(r.rounds),
        )
    return table


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer, smaller rounds: under 2 minutes.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this benchmark (repeatable).")
    ] = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", hidden=True, help="Tiny sizes, seconds (CI).")
    ] = False,
) -> None:
    """Benchmark the platform against its baselines (scratch databases, dropped afterwards).

    Runs against the embedded cluster of ELEARN_HOME. Exits 1 when a target is
    missed and 2 when a benchmark failed (``--smoke``, for CI: tiny sizes, and
    targets are not checked).
    """
    # Imported here: the benchmark pulls in the seeding and analytics stacks
    # (numpy, pandas), which no other command should pay for at start-up.
    need("elearn bench", "faker", "numpy", "pandas", "duckdb", extra="bench")
    from elearn_data.bench import run_bench  # noqa: PLC0415

    profile = "smoke" if smoke else "quick" if quick else "full"
    with domain_errors():
        settings = load_settings()
        report = run_bench(
            settings,
            profile=profile,
            only=only,
            progress=lambda line: err_console.print(f"[dim]•[/] {line}"),
        )
    # Not a terminal (a CI log, a file): do not squeeze the table into 80 columns.
    out = console if console.is_terminal else Console(width=WIDE, highlight=False)
    table = report_table(report)
    for column in table.columns:  # a narrow terminal wraps cells, never cuts a figure
        column.overflow = "fold"
    out.print(table)
    for result in report.results:
        console.print(
            f"[bold]{result.name}[/]: {result.measured}  [dim]vs[/]  {result.baseline_desc}"
        )
        for line in result.detail.get("lines", ()):
            console.print(f"  {line}")
        if result.error is not None:
            console.print(f"  [bold red]error:[/] {result.error}")
    machine = report.machine
    console.print(
        f"[dim]{machine.get('cpus')} CPU ({machine.get('cpu')}), PostgreSQL "
        f"{machine.get('postgresql')}, {report.seconds:.0f} s, "
        f"peak RSS {report.peak_rss_mib:.0f} MiB[/]"
    )
    if json_path is not None:
        report.write_json(json_path)
        console.print(f"results written to {json_path}")
    if report.failed:
        raise typer.Exit(2)
    if not report.all_met and not smoke:
        raise typer.Exit(1)
