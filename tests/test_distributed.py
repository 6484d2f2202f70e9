"""Training across processes, as a multi-GPU rule launches it: torchrun with two CPU processes (gloo) here.
The global batch is split over the processes, the student, EMA target and GAN teacher are sharded with FSDP2
(or replicated with DDP), only the main process writes outputs, every process writes its part of a sharded
checkpoint that 1 or 2 processes resume, SIGTERM saves and exits, the workflow starts torchrun for a
training rule given several GPUs, and context parallelism (diffusers, Ulysses) over 2 processes trains what
one process trains."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from dcm.distributed import micro_batches
from dcm.io import load_tensors
from dcm.stage_server import unserved
from tests.helpers import REPO, SMOKE, dcm, snakemake

ONE_STEP = """
import sys
import torch
from dcm import distributed
from dcm.training import TrainLoop

class Mean:
    def __init__(self, net):
        self.net = net
    def generator_loss(self, batch, generator):
        x, y = batch
        return (self.net(x) - y).pow(2).mean(), {}

torch.manual_seed(0)
net = torch.nn.Linear(3, 2)
data = torch.Generator().manual_seed(1)
x, y = torch.randn(int(sys.argv[3]), 3, generator=data), torch.randn(int(sys.argv[3]), 2, generator=data)
micro = int(sys.argv[4]) or None
TrainLoop(student=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.5), objective=Mean(net),
          sample_batch=lambda g: (x, y), out_dir=__import__("pathlib").Path(sys.argv[1]) / f"run{distributed.rank()}",
          steps=1, seed=0, checkpoint_every=1, strategy=sys.argv[2], micro_batch_size=micro).run()
if distributed.is_main():
    torch.save({k: v.detach() for k, v in net.state_dict().items()}, sys.argv[1] + "/weights.pt")
"""


#: runs `python -m dcm ARGS` (or a script) where diffusers' enable_parallelism can start on a CPU: diffusers
#: 0.42.1 takes the rank modulo torch.accelerator.device_count(), which is 0 without an accelerator
CPU_CONTEXT_PARALLEL = """
import runpy, sys, torch
torch.accelerator.device_count = lambda: 1
if sys.argv[1] == "--script":
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    runpy.run_module("dcm", run_name="__main__", alter_sys=True)
"""


def test_micro_batches_split_the_global_batch_over_processes():
    assert micro_batches(4, 2, 0) == [([0, 1], 1.0)] and micro_batches(4, 2, 1) == [([2, 3], 1.0)]
    assert micro_batches(3, 2, 0) == [([0, 1], 4 / 3)] and micro_batches(3, 2, 1) == [([2], 2 / 3)]
    assert micro_batches(6, 4, 3) == [([0], 0.0)]  # slots past the end: a forward for the collectives, weight 0
    assert micro_batches(5, 2, 1, 1) == [([1], 0.4), ([3], 0.4), ([0], 0.0)]  # accumulation over 3 micro-steps
    for batch, world, micro in ((5, 2, 1), (6, 4, None), (7, 3, 2)):
        plans = [micro_batches(batch, world, r, micro) for r in range(world)]
        assert len({len(p) for p in plans}) == 1  # the same number of forwards on every process
        real = sorted(i for p in plans for idx, w in p if w for i in idx)
        assert real == list(range(batch))  # each sample once, on one process
        assert sum(w for p in plans for _, w in p) == pytest.approx(world)  # the averaged weights sum to 1


def _one_step_reference(batch):
    """The weights after one SGD step on the whole batch in this process."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    data = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 3, generator=data), torch.randn(batch, 2, generator=data)
    (net(x) - y).pow(2).mean().backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.5 * p.grad
    return net.state_dict()


@pytest.mark.parametrize("strategy,batch,micro", [("fsdp2", 4, 0), ("ddp", 3, 0), ("fsdp2", 5, 1)])
def test_two_processes_take_the_step_one_process_takes_on_the_global_batch(tmp_path, strategy, batch, micro):
    """batch_size is global: split over 2 processes (unevenly, or in micro-batches with accumulation), the
    averaged gradient is the whole batch's."""
    script = tmp_path / "one_step.py"
    script.write_text(ONE_STEP)
    proc = torchrun(str(script), str(tmp_path), strategy, str(batch), str(micro))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = torch.load(tmp_path / "weights.pt", weights_only=True), _one_step_reference(batch)
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want), (got, want)


ONE_PROCESS_ONLY = "seme.tc_share"  # the smoke config's measurement that a multi-process stage refuses


def test_the_tc_share_is_refused_across_processes(backbone, net, monkeypatch, tmp_path):
    """Its gradient norms are taken on unsharded gradients, in one process: a multi-process stage stops, in one
    line, before any step."""
    from dcm import distillation
    from dcm.config import load_config
    from dcm.errors import DCMError
    from dcm.experts import Expert

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}"])
    assert cfg["seme"]["tc_share"]
    monkeypatch.setattr(distillation.distributed, "world_size", lambda: 2)
    with pytest.raises(DCMError, match=r"^seme.tc_share: the gradient share is measured in one process only"):
        distillation.train_consistency(cfg, "seme", backbone, Expert(net), [10, 6], (6, 10), tmp_path, None, tc=True)
    assert not any(tmp_path.iterdir())


def torchrun(*args: str, cwd=REPO, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc-per-node 2 ARGS` on CPU, in `env` (default: this
    process's, whose `python -m dcm` ranks go through the stage server)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}  # a script outside the repo imports
    # this checkout's dcm
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    results = tmp_path_factory.mktemp("distributed")
    for stage in ("dataset", "teacher", "trajectories"):
        dcm(stage, "--set", "tracking.enabled=false", results=results)  # the tests track what they check
    return results


def test_two_process_training_writes_one_complete_output(cache):
    for stage in ("seme", "dete"):  # SemE, then DetE: LoRA, copied layers and the GAN's discriminator
        proc = torchrun("-m", "dcm", stage, "--variant", "dcm", "--config", str(SMOKE), "--set", f"results_dir={cache}",
                        "--set", f"{ONE_PROCESS_ONLY}=false")
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


def _copy_cache(cache, target):
    for stage in ("dataset", "teacher", "trajectories"):
        shutil.copytree(cache / "smoke" / stage, target / "smoke" / stage)
    return target


SEME = ("seme", "--variant", "dcm", "--set", "seme.steps=20", "--set", "seme.checkpoint_every=2",
        "--set", "tracking.enabled=false", "--set", f"{ONE_PROCESS_ONLY}=false")


def _network(results):
    return load_tensors(results / "smoke" / "seme" / "tc" / "network" / "diffusion_pytorch_model.safetensors")


def test_sigterm_saves_a_sharded_checkpoint_that_one_or_two_processes_resume(cache, tmp_path):
    reference, stopped = _copy_cache(cache, tmp_path / "reference"), _copy_cache(cache, tmp_path / "stopped")
    dcm(*SEME, results=reference)  # uninterrupted; that 2 processes take 1 process's steps is tested above

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dcm",
               *SEME, "--config", str(SMOKE), "--set", f"results_dir={stopped}"]
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = stopped / "smoke" / "seme" / "tc.partial" / "checkpoint"
    deadline = time.time() + 300
    while not (ckpt / "progress.json").is_file():
        assert run.poll() is None and time.time() < deadline, run.stderr.read()[-3000:]
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)  # what SLURM sends before pre-empting the job
    stderr = run.communicate(timeout=120)[1]
    assert run.returncode != 0 and "stopped by a signal after step" in stderr, stderr[-3000:]
    assert not (stopped / "smoke" / "seme" / "tc").exists()  # nothing published
    progress = json.loads((ckpt / "progress.json").read_text())
    assert progress["world_size"] == 2 and progress["step"] < 20
    assert (ckpt / ".metadata").is_file() and len(list(ckpt.glob("*.distcp"))) == 2  # one shard file per rank

    single = tmp_path / "single"
    shutil.copytree(stopped, single)
    proc = torchrun("-m", "dcm", *SEME, "--config", str(SMOKE), "--set", f"results_dir={stopped}")  # requeued, 2
    dcm(*SEME, results=single)  # or 1 process: the same data order, so the same network
    want = _network(reference)
    for results in (stopped, single):
        got = _network(results)
        assert got.keys() == want.keys() and all(torch.allclose(got[k], want[k], atol=1e-5) for k in want)
        lines = (results / "smoke" / "seme" / "tc" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == list(range(1, 21))


def test_context_parallel_training_equals_one_process(cache, tmp_path):
    """distributed.context_parallel=2 on 2 processes: one data-parallel group, both ranks on the same samples and
    noise, the tiny Wan's tokens split between them by diffusers' own plan; SemE, then DetE with LoRA, copied
    timestep layers and the GAN (teacher features gathered for the heads), train the networks one process trains."""
    one, two = _copy_cache(cache, tmp_path / "one"), _copy_cache(cache, tmp_path / "two")
    launch = tmp_path / "launch.py"
    launch.write_text(CPU_CONTEXT_PARALLEL)
    for stage in ("seme", "dete"):
        args = (stage, "--variant", "dcm", "--set", "tracking.enabled=false", "--set", f"{ONE_PROCESS_ONLY}=false")
        dcm(*args, results=one)
        proc = torchrun(str(launch), *args, "--config", str(SMOKE), "--set", f"results_dir={two}",
                        "--set", "distributed.context_parallel=2", env=unserved())  # the launcher patches torch first
        assert proc.returncode == 0, proc.stderr[-3000:]
    for path in ("seme/tc/network/diffusion_pytorch_model.safetensors", "dete/dcm/detail_expert.safetensors"):
        got, want = load_tensors(two / "smoke" / path), load_tensors(one / "smoke" / path)
        assert got.keys() == want.keys() and all(torch.allclose(got[k], want[k], atol=2e-5) for k in want), path
    lines = [json.loads(line) for line in (two / "smoke" / "dete" / "dcm" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and {"g_adv", "fm", "d_loss"} <= set(lines[-1])


HUNYUAN_CONTEXT_PARALLEL = """
import copy, json, sys
from pathlib import Path
import torch
from accelerate import PartialState
from dcm import context_parallel, distributed
from dcm.backbones.hunyuan_video import HunyuanVideoBackbone
from dcm.experts import Expert, attach_detail_expert
from tests.test_backbones import SHAPE

PartialState(cpu=True)
backbone = HunyuanVideoBackbone({"pretrained": sys.argv[1], **SHAPE, "device": "cpu", "gradient_checkpointing": True})
cond = backbone.encode_prompts(["a red cat", "the dog walks in the city"])  # padded, to different lengths
torch.manual_seed(0)
x, sigma = torch.randn(2, *backbone.latent_shape), torch.tensor([0.9, 0.3])
mesh = context_parallel.device_mesh(2, 2, torch.device("cpu"))
report = {}
for name in ("seme", "dete"):
    net = backbone.load_network(Path(sys.argv[1]) / "transformer").train()
    expert = Expert(net) if name == "seme" else attach_detail_expert(net, backbone, rank=2, alpha=4)
    with torch.no_grad():
        for p in expert.parameters():
            p.requires_grad_(True)
            p.add_(0.01 * torch.randn_like(p))  # LoRA and copied layers away from their initial no-op
    reference = copy.deepcopy(expert)
    backbone.enable_context_parallel(expert, mesh)
    distributed.shard(expert, "fsdp2", torch.float32, distributed.block_class_names(expert))  # as TrainLoop does
    out, want = expert(backbone, x, sigma, cond), reference(backbone, x, sigma, cond)
    out.square().mean().backward()
    want.square().mean().backward()
    pairs = list(zip(expert.parameters(), reference.parameters()))
    assert all((p.grad is None) == (q.grad is None) for p, q in pairs)  # the swapped-out originals get none
    grads = [(p.grad.full_tensor() * 2, q.grad) for p, q in pairs if q.grad is not None]
    scale = max(float(q.abs().max()) for _, q in grads)
    report[name] = {"output": float((out - want).abs().max()), "output_scale": float(want.abs().max()),
                    "gradient": max(float((g - q).abs().max()) for g, q in grads) / scale}
if torch.distributed.get_rank() == 0:
    Path(sys.argv[2]).write_text(json.dumps(report))
"""


def test_hunyuan_video_context_parallel_forward_and_gradients_equal_one_process(tmp_path):
    """The HunyuanVideo adapter's plan on 2 processes (video tokens split, text tokens on both ranks with their
    keys weighted 1/2), with FSDP2, per-block checkpointing, padded prompts of two lengths, SemE and the DetE
    (LoRA, copied layers): the output and the gradients summed over the two ranks are one process's."""
    from tests.test_backbones import build_hunyuan_video

    torch.manual_seed(0)
    build_hunyuan_video(tmp_path / "hunyuan")
    (tmp_path / "launch.py").write_text(CPU_CONTEXT_PARALLEL)
    (tmp_path / "check.py").write_text(HUNYUAN_CONTEXT_PARALLEL)
    proc = torchrun(str(tmp_path / "launch.py"), "--script", str(tmp_path / "check.py"), str(tmp_path / "hunyuan"),
                    str(tmp_path / "report.json"), env=unserved())
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    for name in ("seme", "dete"):
        assert report[name]["output"] < 1e-5 * report[name]["output_scale"] and report[name]["gradient"] < 1e-5, report
