"""The smoke study in one process vs on a local Dask cluster, each from a fresh project copy.

Side by side, in one run: ``kedro run --env smoke --pipelines ablation`` (one run after
another, torch using every core) and ``kedro ablation run --env smoke --workers N`` (N worker
processes, the cores split between them), each timed from the command to its exit, ingestion
and the summary included. The cluster's own line on the per-task overhead (a Kedro session
per run: config, catalog, loading the splits, saving the row) is printed too.
``--max-steps`` lengthens every run, to show where the cluster starts to pay. Last line:
``dask <N> workers vs one process: <speed-up>x``.

    python benchmarks/ablation_cluster.py [--workers 2] [--max-steps 20]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
          "06_models", "07_model_output", "08_reporting")


def fresh_project(folder: Path) -> Path:
    """conf/, pyproject.toml and empty data layers: what a `kedro` command needs here."""
    shutil.copytree(ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("credentials*"))
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, folder / name)
    (folder / "src").mkdir()
    for layer in LAYERS:
        (folder / "data" / layer).mkdir(parents=True)
    return folder


def timed(project: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"kedro {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="steps per run (default: the smoke env's)")
    args = parser.parse_args()
    params = ["--params", f"ablation.max_steps={args.max_steps}"] if args.max_steps else []

    with tempfile.TemporaryDirectory() as folder:
        one = fresh_project(Path(folder) / "sequential")
        many = fresh_project(Path(folder) / "dask")
        sequential, _ = timed(one, "run", "--env", "smoke", "--pipelines", "ablation", *params)
        dask, out = timed(many, "ablation", "run", "--env", "smoke", "--workers",
                          str(args.workers), *params)
    overhead = next((line for line in out.splitlines() if "per-task overhead" in line), "")
    print(f"one process (kedro run --pipelines ablation): {sequential:.1f} s")
    print(f"dask, {args.workers} local workers (kedro ablation run): {dask:.1f} s")
    print(f"per task: {overhead}")
    print(f"dask {args.workers} workers vs one process: {sequential / dask:.2f}x")


if __name__ == "__main__":
    main()
