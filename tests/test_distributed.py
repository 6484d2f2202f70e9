"""Data-parallel training across processes, as a multi-GPU rule launches it: torchrun with two CPU processes
(gloo) here. Gradients are averaged, only the main process writes, and the workflow starts torchrun for a
training rule given several GPUs."""

import json
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dcm.io import load_tensors
from tests.helpers import REPO, SMOKE, dcm, snakemake

AVERAGE = """
import json, sys
import torch
from accelerate import Accelerator
from dcm import distributed
accelerator = Accelerator(cpu=True)
p = torch.nn.Parameter(torch.zeros(2))
p.grad = torch.full((2,), 1.0 + 2.0 * distributed.rank())  # 1 on rank 0, 3 on rank 1
distributed.average_gradients([p])
with open(f"{sys.argv[1]}/rank{distributed.rank()}.json", "w") as f:  # own file: the processes share stdout
    json.dump(p.grad.tolist(), f)
"""





def torchrun(*args: str, cwd=REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc-per-node 2 ARGS` on CPU."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_gradients_are_averaged_over_processes(tmp_path):
    script = tmp_path / "average.py"
    script.write_text(AVERAGE)
    proc = torchrun(str(script), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[2.0, 2.0]] * 2  # (1 + 3) / 2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    results = tmp_path_factory.mktemp("distributed")
    for stage in ("dataset", "teacher", "trajectories"):
        dcm(stage, results=results)
    return results


def test_two_process_training_writes_one_complete_output(cache):
    for stage in ("seme", "dete"):  # SemE, then DetE: LoRA, copied layers and the GAN's discriminator
        proc = torchrun("-m", "dcm", stage, "--variant", "dcm", "--config", str(SMOKE), "--set", f"results_dir={cache}")
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = cache / "smoke" / "dete" / "dcm"
    assert not out.with_name("dcm.partial").exists()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]  # written once, by rank 0
    assert yaml.safe_load((out / "config.resolved.yaml").read_text())["dete"]["steps"] == 4
    assert {"g_adv", "d_loss"} <= set(json.loads(lines[-1]))
    assert load_tensors(out / "detail_expert.safetensors")
    client = MlflowClient(f"sqlite:///{cache / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke/table1")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags["stage"] == "dete"]
    assert len(runs) == 1 and runs[0].data.tags["variant"] == "dcm"  # one tracked run, not one per process


def test_a_training_rule_given_two_gpus_is_launched_with_torchrun(tmp_path):
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["resources"]["seme"] = {"gpu": 2}
    config = tmp_path / "two_gpus.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--printshellcmds", "--configfile", str(config), "--config", f"results_dir={tmp_path}",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = [line for line in proc.stdout.splitlines() if " -m dcm " in line]
    seme = [c for c in commands if " -m dcm seme " in c]
    assert seme and all("torch.distributed.run --standalone --nproc-per-node 2 -m dcm seme" in c for c in seme)
    assert all("torch.distributed.run" not in c for c in commands if " -m dcm seme " not in c)
