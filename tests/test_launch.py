"""Multi-node launch (dcm/launch.py): the resources and commands of training rules, the sbatch call the SLURM
executor plugin builds from them, the command run under stand-in srun/scontrol, and a dry run of the slurm
profile on each real-backbone config (no model weights needed: backbone.pretrained is only read by the stages)."""

import os
import re
import stat
import subprocess
from types import SimpleNamespace

import pytest
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from dcm import launch
from dcm.config import load_config
from dcm.errors import DCMError
from tests.helpers import REPO, snakemake


def cfg(gpus: int, per_node: int = 8, rule: str = "seme") -> dict:
    return {"threads": 4, "cluster": {"gpus_per_node": per_node, "rendezvous_port": 29511},
            "resources": {"default": {"mem_mb": 1000}, rule: {"gpu": gpus, "gpu_model": "a100", "cpus_per_task": 64}}}


def test_one_gpu_and_one_node_commands():
    assert launch.command(cfg(1), "seme", "py", "seme --config c.yaml") == "py -m dcm seme --config c.yaml"
    assert launch.command(cfg(4), "seme", "py", "seme") == "py -m torch.distributed.run --standalone --nproc-per-node 4 -m dcm seme"
    assert launch.command(cfg(4, rule="sample"), "sample", "py", "sample") == "py -m dcm sample"  # not a training rule
    assert launch.job_resources(cfg(8), "seme") == {"gpu": 8, "gpu_model": "a100", "mem_mb": 1000, "runtime": 60,
                                                    "cpus_per_task": 64}


def test_multi_node_resources_and_command():
    resources = launch.job_resources(cfg(24), "seme")
    assert resources == {"mem_mb": 1000, "runtime": 60, "cpus_per_task": 64, "nodes": 3, "tasks": 3, "tasks_per_gpu": 0,
                         "mpi": "srun", "gres": "gpu:a100:8"}
    command = launch.command(cfg(24), "seme", "py", "seme --config c.yaml")
    assert command.startswith('MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) && srun ')
    for flag in ("--nodes 3", "--ntasks 3", "--ntasks-per-node 1", "--nnodes 3", "--nproc-per-node 8",
                 "--rdzv-backend c10d", '--rdzv-endpoint "$MASTER_ADDR":29511', '--rdzv-id "$SLURM_JOB_ID"'):
        assert flag in command, flag
    assert command.endswith("-m dcm seme --config c.yaml")


@pytest.mark.parametrize("gpus,rule,needle", [(20, "seme", "not a multiple of cluster.gpus_per_node=8"),
                                              (16, "sample", "only the multi-process rules")])
def test_bad_multi_node_requests_name_the_key(gpus, rule, needle):
    with pytest.raises(DCMError, match=needle) as err:
        launch.job_resources(cfg(gpus, rule=rule), rule)
    assert f"resources.{rule}.gpu={gpus}" in str(err.value)


class Resources(dict):
    __getattr__ = dict.__getitem__


def test_plugin_builds_one_task_per_node_with_gpus_per_node():
    """The installed SLURM executor plugin's own sbatch builder on the multi-node resources."""
    job = SimpleNamespace(resources=Resources(launch.job_resources(cfg(24), "seme")), threads=4)
    params = {"run_uuid": "u", "slurm_logfile": "log", "comment_str": "rule_seme", "account": "-A acc",
              "partition": "-p gpu", "workdir": "/w"}
    call = get_submit_command(job, params, settings=SimpleNamespace(requeue=True, no_requeue=False, qos=None,
                                                                      reservation=None)) + set_gres_string(job)
    for flag in ("--nodes=3", "--ntasks=3", "--requeue", "--cpus-per-task=64", "--mem 1000", "--gres=gpu:a100:8"):
        assert flag in call, (flag, call)
    assert "--ntasks-per-gpu" not in call and "--gpus=" not in call


def _stand_in(directory, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_multi_node_command_runs_one_torchrun_per_node(tmp_path):
    """Under stand-ins for scontrol (the expanded node list) and srun (each task once, with SLURM_NODEID), the
    command's shell resolves the rendezvous host and starts one torchrun per node."""
    _stand_in(tmp_path, "scontrol", 'test "$1 $2 $3" = "show hostnames gpu[01-03]" && printf "gpu01\\ngpu02\\ngpu03\\n"\n')
    _stand_in(tmp_path, "srun", 'while [[ $1 == -* || $1 =~ ^[0-9]+$ ]]; do shift; done\n'
                                'for n in 0 1 2; do SLURM_NODEID=$n "$@"; done\n')
    _stand_in(tmp_path, "python", 'echo "node $SLURM_NODEID: $*"\n')
    command = launch.command(cfg(24), "seme", "python", "seme --config 'my config.yaml'")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu[01-03]",
           "SLURM_JOB_ID": "77"}
    out = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["node 0", "node 1", "node 2"]
    assert all("--rdzv-endpoint gpu01:29511 --rdzv-id 77" in line and line.endswith("seme --config my config.yaml")
               for line in lines)


def _dry_run_jobs(config: str, results) -> dict:
    """rule name -> (resources line, shell command) of one job of each rule in a dry run of the slurm profile."""
    proc = snakemake("-n", "--profile", "slurm", "--configfile", str(REPO / "config" / config), "--config",
                     f"results_dir={results}", timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        name = re.match(r"rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        if name and resources and shell:
            jobs.setdefault(name.group(1), (resources.group(1), shell.group(1)))
    return jobs


@pytest.mark.parametrize("config,training", [
    ("hunyuanvideo.yaml", ("nodes=3, tasks=3, tasks_per_gpu=0, mpi=srun, gres=gpu:a100:8",
                           "srun --nodes 3 --ntasks 3 --ntasks-per-node 1",
                           "torch.distributed.run --nnodes 3 --nproc-per-node 8 --rdzv-backend c10d")),
    ("cogvideox-2b.yaml", ("gpu=4, cpus_per_task=32, gpu_model=a100", "", "torch.distributed.run --standalone --nproc-per-node 4")),
    ("wan2.1-t2v-1.3b.yaml", ("gpu=1, cpus_per_task=8, gpu_model=a100", "", "")),
])
def test_slurm_dry_run_of_real_configs(tmp_path, config, training):
    resources, srun, torchrun = training
    cfg_ = load_config(REPO / "config" / config)
    assert not (REPO / cfg_["backbone"]["pretrained"]).exists()  # the dry run needs no weights
    jobs = _dry_run_jobs(config, tmp_path)
    for rule in ("seme", "dete", "baseline", "phased_baseline"):
        line, shell = jobs[rule]
        assert resources in line, (rule, line)
        assert srun in shell and torchrun in shell, (rule, shell)
        assert re.search(r"-m dcm (seme|dete|vcm|lcm|pcm) --config ", shell), shell
        if not torchrun:
            assert "torch.distributed.run" not in shell and "srun" not in shell
    teacher_line, teacher_shell = jobs["teacher"]
    assert "gpu=1" in teacher_line and "torch.distributed.run" not in teacher_shell
