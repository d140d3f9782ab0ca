"""CLI startup: how long project commands take to start, side by side with a bare Kedro import.

Each command runs ``--repeat`` times in a fresh process from the project root (best time
kept): ``python -c "import kedro.framework.cli"`` (the floor any ``kedro`` command pays),
``kedro --version``, ``kedro registry list`` and a parameter typo's error
(``kedro run --pipeline ingestion --params ingestion.sourse=cifar10``, which must fail before
any node, with the message that names the key: the run is checked to fail for that reason). Tracking is switched off (``SIMPLE_CNN_TRACKING=off``); with the ``mlflow`` extra
installed Kedro still imports its plugin first. Last line: the slowest of ``registry list``
and the typo, as a multiple of the bare import.

    python benchmarks/cli_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import kedro.framework.cli": [sys.executable, "-c", "import kedro.framework.cli"],
    "kedro --version": [sys.executable, "-m", "kedro", "--version"],
    "kedro registry list": [sys.executable, "-m", "kedro", "registry", "list"],
    "parameter typo": [sys.executable, "-m", "kedro", "run", "--pipeline", "ingestion",
                       "--params", "ingestion.sourse=cifar10"],
}
TYPO_ERROR = "ingestion.sourse is not a known key"


def best_of(command: list[str], repeat: int, must_fail: bool) -> float:
    env = {**os.environ, "SIMPLE_CNN_TRACKING": "off"}
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.perf_counter() - started
        failed_as_meant = result.returncode != 0 and TYPO_ERROR in result.stdout + result.stderr
        if not (failed_as_meant if must_fail else result.returncode == 0):
            raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seconds = {name: best_of(command, args.repeat, must_fail=name == "parameter typo")
               for name, command in COMMANDS.items()}
    floor = seconds["import kedro.framework.cli"]
    for name, value in seconds.items():
        print(f"{name:28s} {value:6.2f} s  {value / floor:5.1f}x the bare import")
    worst = max(seconds["kedro registry list"], seconds["parameter typo"])
    print(f"slowest project command {worst / floor:.1f}x a bare Kedro import ({worst:.2f} s vs {floor:.2f} s)")


if __name__ == "__main__":
    main()
