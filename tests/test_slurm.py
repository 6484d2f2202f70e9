"""The smoke pipeline up to the teacher's 4-step samples (dataset on a CPU job; teacher and sample on GPU jobs)
through `snakemake --profile slurm` on a real single-node SLURM cluster with two fake GPUs
(scripts/slurm/cluster.sh), checking that GPU rules were given CUDA_VISIBLE_DEVICES and CPU rules were not. Every
rule runs through the same executor settings; the local-executor test (tests/test_workflow.py) runs all of them."""

import re
import subprocess

import pytest

from dcm.stage_server import unserved
from tests.helpers import REPO, SMOKE, snakemake


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "cluster.sh"), "start"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield
    subprocess.run(["scancel", "-u", "root"], capture_output=True)


def test_smoke_pipeline_on_slurm(cluster, tmp_path):
    run = tmp_path / "smoke"
    # the first status check 2 s after a submission (the profile waits 10 s, right for a real cluster's queue)
    proc = snakemake("--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
                     "--configfile", str(SMOKE), "--config", f"results_dir={tmp_path}",
                     "--", str(run / "samples" / "teacher-4"), timeout=1800, env=unserved())  # fresh interpreters,
    # as on a cluster
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (run / "samples" / "teacher-4" / "samples.safetensors").is_file()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d", (run / "logs" / "sample-teacher-4.log").read_text())
    gpu_log = (run / "logs" / "teacher.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d", gpu_log), gpu_log[:500]
    assert re.search(r"SLURM_JOB_ID=\d+", gpu_log)
    cpu_log = (run / "logs" / "dataset.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES= ", cpu_log) and re.search(r"SLURM_JOB_ID=\d+", cpu_log)
