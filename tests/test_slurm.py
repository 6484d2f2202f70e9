"""The smoke pipeline through `snakemake --profile slurm` on a real single-node SLURM cluster with two fake
GPUs (scripts/slurm/cluster.sh), checking that GPU rules were given CUDA_VISIBLE_DEVICES."""

import re
import subprocess

import pytest

from dcm.io import read_json
from tests.helpers import REPO, SMOKE
from tests.test_workflow import snakemake


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "cluster.sh"), "start"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield
    subprocess.run(["scancel", "-u", "root"], capture_output=True)


def test_smoke_pipeline_on_slurm(cluster, tmp_path):
    proc = snakemake("--profile", "slurm", "--configfile", str(SMOKE), "--config", f"results_dir={tmp_path}",
                     timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run = tmp_path / "smoke"
    assert read_json(run / "compare" / "distances.json")["rows"]
    gpu_log = (run / "logs" / "teacher.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d", gpu_log), gpu_log[:500]
    assert re.search(r"SLURM_JOB_ID=\d+", gpu_log)
    cpu_log = (run / "logs" / "dataset.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES= ", cpu_log) and re.search(r"SLURM_JOB_ID=\d+", cpu_log)
