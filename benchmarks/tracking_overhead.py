"""What MLflow tracking (the `mlflow` extra) adds to ``kedro run --pipeline cnn``.

Side by side, in one run, on a fresh project copy holding the archive: the same command with
``SIMPLE_CNN_TRACKING=off`` and with tracking into the copy's own SQLite store, alternating,
each timed from the command to its exit (the first tracked round also creates the store).
Then the import cost that the extra adds to every ``kedro`` command: Kedro loads
kedro-mlflow's CLI, which imports mlflow, before any command runs. Last line:
``tracked vs untracked: <ratio>x (kedro run --pipeline cnn, fastest of <n>)``.

    python benchmarks/tracking_overhead.py --archive data/01_raw/cifar-10-binary.tar.gz [--rounds 2] [--env smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablation_cluster import fresh_project

IMPORT_COST = """
import time
import kedro.framework.cli.cli
started = time.perf_counter()
import kedro_mlflow.framework.cli.cli
print(time.perf_counter() - started)
"""


def timed_run(project: Path, tracking: str, *args: str) -> float:
    env = {**os.environ, "SIMPLE_CNN_TRACKING": tracking}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipeline", "cnn", *args],
                            cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"kedro run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def import_cost(rounds: int) -> float:
    """Seconds to import kedro-mlflow's CLI once Kedro's own is imported (fastest of rounds)."""
    return min(float(subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True,
                                    text=True, check=True).stdout.split()[-1]) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="cifar-10-binary.tar.gz")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--params", default="", help="more for kedro run (e.g. cnn.training.epochs=2)")
    parser.add_argument("--env", default=None, help="a conf env; `smoke` shows the fixed cost on short runs")
    args = parser.parse_args()
    md5 = hashlib.md5(args.archive.read_bytes()).hexdigest()  # the archive given is the one meant
    extra = ("--params", ",".join(filter(None, [f"cifar10_md5={md5}", args.params])),
             *(("--env", args.env) if args.env else ()))

    with tempfile.TemporaryDirectory() as folder:
        project = fresh_project(Path(folder))
        (project / "data/01_raw/cifar-10-binary.tar.gz").symlink_to(args.archive.resolve())
        untracked, tracked = [], []
        for round_ in range(args.rounds):
            untracked.append(timed_run(project, "off", *extra))
            tracked.append(timed_run(project, "on", *extra))
            print(f"round {round_ + 1}: untracked {untracked[-1]:.1f} s, tracked {tracked[-1]:.1f} s",
                  flush=True)
    cost = import_cost(3)
    print(f"import of kedro-mlflow's CLI (mlflow included), paid by every kedro command: {cost:.2f} s")
    u, t = min(untracked), min(tracked)
    print(f"tracked vs untracked: {t / u:.3f}x (kedro run --pipeline cnn{' --env ' + args.env if args.env else ''}, "
          f"fastest of {args.rounds}: {t:.1f} s vs {u:.1f} s)")


if __name__ == "__main__":
    main()
