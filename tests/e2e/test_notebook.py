"""The analytics notebook runs top to bottom against a live cluster, so it never rots."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from tests.integration.analytics import truth
from tests.integration.analytics.world import ensure_world

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "analytics.ipynb"


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_analytics_notebook_runs_without_errors_and_draws_its_plots(
    db: Database, cluster: LocalCluster, tmp_path: Path
) -> None:
    ensure_world(db, cluster)
    # The kernel is another process: it holds no causal token, so let every
    # replica replay the data first.
    truth.wait_replicas_caught_up(cluster)
    expected = truth.platform(truth.read_raw(cluster))["all"]

    # A checkout after `elearn up`: <project>/.elearn (here the test cluster's home)
    # and <project>/examples/analytics.ipynb. The kernel starts in examples/ with no
    # ELEARN_HOME set, as `jupyter nbconvert --execute examples/analytics.ipynb`
    # or a notebook server opened on the checkout starts it: it must find ../.elearn.
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    (project / ".elearn").symlink_to(cluster.home, target_is_directory=True)
    shutil.copy(NOTEBOOK, project / "examples" / NOTEBOOK.name)

    notebook = nbformat.read(project / "examples" / NOTEBOOK.name, as_version=4)
    # Prove which interpreter runs the kernel and where it found its settings
    # (this copy only; the committed file is untouched).
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    # After the cell that connects (markdown, then connect(), once the line above is in).
    notebook.cells.insert(
        3, nbformat.v4.new_code_cell("import os\nprint(db.settings.home, os.getcwd())")
    )
    # PYTHONPATH: the kernel imports this checkout's package even where an editable
    # install's finder is stale (one generated before elearn_data/__init__.py existed
    # maps `elearn_data` to a namespace package without connect()).
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEARN_")}
    env.update({"MPLBACKEND": "Agg", "PYTHONPATH": python_path})
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        # Run where a reader opens it: in the examples folder.
        resources={"metadata": {"path": str(project / "examples")}},
    )
    client.execute(env=env)  # raises CellExecutionError on the first failing cell

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    assert Path(outputs[0]["text"].strip()).resolve() == Path(sys.executable).resolve()
    home, cwd = notebook.cells[3].outputs[0]["text"].split()
    assert (Path(home), Path(cwd)) == (project / ".elearn", project / "examples")
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    # regions, revenue by month, the top course's funnel, the leaderboard, classmates
    # across regions
    assert len(images) >= 5
    html = "".join(out.get("data", {}).get("text/html", "") for out in outputs)
    for column in (
        "published_courses",
        "revenue",
        "average_rating",
        "learners",
        "retained_pct",
        "classmate_region",
        "average_points",
        "awarded",
    ):
        assert column in html
    # The platform table shows the merged figures the raw rows give.
    assert f"<td>{expected['revenue']}</td>" in html
