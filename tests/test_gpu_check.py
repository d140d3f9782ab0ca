"""``benchmarks/gpu_check.py`` runs on the CPU too, stage by stage, so that the first GPU run does
not fail on something a CPU could have shown (a config the validator refuses, a stage that
breaks the next one)."""

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_the_gpu_check_runs_every_stage_on_the_cpu_and_summarises_each():
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = result.stdout.strip().splitlines()[-1].split(" | ")
    assert [part.split(" (")[0] for part in summary] == [
        "ok precision", "ok overflow", "ok resume", "ok syncs", "ok ddp", "not run syncbn", "ok batch"]
    assert "5 of 5 forced overflows skipped and counted" in summary[1]
    assert "0 in every preset (none, standard, seed, medium, heavy)" in summary[3]
    assert "2 CPU processes over Gloo" in summary[4] and "needs NCCL between 2 or more GPUs" in summary[5]
    assert "loop / bare" in result.stdout  # every precision against its bare step
