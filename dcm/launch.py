"""How the workflow starts one stage (torch-free: workflow/rules/common.smk imports it): the SLURM resources of a
rule and its launch command. A multi-process rule given several GPUs runs one process per GPU under torchrun; one
whose `resources.<rule>.gpu` exceeds `cluster.gpus_per_node` spans several nodes: one srun task per node, each
a torchrun that joins a c10d rendezvous on the job's first host."""

from __future__ import annotations

from dcm.errors import DCMError

#: rules whose stage runs one process per GPU: the training stages, and the trajectory and VBench generation
#: stages, which split their shards or videos over the processes; the others use one process
MULTI_PROCESS_RULES = frozenset({"teacher", "seme", "dete", "baseline", "trajectories", "vbench_sample"})
#: the job's first host, where the rendezvous listens: SLURM's node list expanded by scontrol
FIRST_HOST = 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'


def resource(cfg: dict, rule: str, key: str, default):
    """A generic resource of `rule` from config `resources`, falling back to `resources.default`."""
    table = cfg["resources"]
    return table.get(rule, {}).get(key, table.get("default", {}).get(key, default))


def nodes(cfg: dict, rule: str) -> int:
    """Nodes the job of `rule` spans: its GPUs over `cluster.gpus_per_node`, which must divide them."""
    gpus, per_node = resource(cfg, rule, "gpu", 0), cfg["cluster"]["gpus_per_node"]
    if gpus <= per_node:
        return 1
    if gpus % per_node:
        raise DCMError(f"resources.{rule}.gpu={gpus} spans several nodes but is not a multiple of "
                       f"cluster.gpus_per_node={per_node}")
    return gpus // per_node


def job_resources(cfg: dict, rule: str) -> dict:
    """Snakemake resources of `rule` (cluster specifics such as partition and account stay in the profile).
    A multi-node job asks for `nodes` nodes with one task each (`mpi: srun`: the command calls srun itself),
    `cpus_per_task` and `mem_mb` per node, and its GPUs per node as gres."""
    gpus = resource(cfg, rule, "gpu", 0)
    out = dict(gpu=gpus, mem_mb=resource(cfg, rule, "mem_mb", 4000), runtime=resource(cfg, rule, "runtime", 60),
               cpus_per_task=resource(cfg, rule, "cpus_per_task", cfg["threads"]))
    model = resource(cfg, rule, "gpu_model", None)
    if gpus and model:
        out["gpu_model"] = model
    count = nodes(cfg, rule)
    if count > 1:
        if rule not in MULTI_PROCESS_RULES:
            raise DCMError(f"resources.{rule}.gpu={gpus} spans {count} nodes, but only the multi-process rules "
                           f"({', '.join(sorted(MULTI_PROCESS_RULES))}) run across nodes")
        per_node = gpus // count
        del out["gpu"]
        out.pop("gpu_model", None)
        # the plugin's --ntasks-per-gpu defaults to `tasks` on GPU jobs; tasks_per_gpu=0 leaves it out
        out.update(nodes=count, tasks=count, tasks_per_gpu=0, mpi="srun",
                   gres=f"gpu:{model}:{per_node}" if model else f"gpu:{per_node}")
    return out


def command(cfg: dict, rule: str, python: str, args: str) -> str:
    """The shell command that runs `python -m dcm ARGS` for `rule`: plain, under `torchrun --standalone` on
    one node with several GPUs, or srun (one task per node) + torchrun with a c10d rendezvous across nodes."""
    gpus, count = resource(cfg, rule, "gpu", 0), nodes(cfg, rule)
    if rule not in MULTI_PROCESS_RULES or gpus <= 1:
        return f"{python} -m dcm {args}"
    if count == 1:
        return f"{python} -m torch.distributed.run --standalone --nproc-per-node {gpus} -m dcm {args}"
    port = cfg["cluster"]["rendezvous_port"]
    cpus = resource(cfg, rule, "cpus_per_task", cfg["threads"])
    srun = f"srun --nodes {count} --ntasks {count} --ntasks-per-node 1 --cpus-per-task {cpus} --kill-on-bad-exit=1"
    torchrun = (f"{python} -m torch.distributed.run --nnodes {count} --nproc-per-node {gpus // count} "
                f'--rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR":{port} --rdzv-id "$SLURM_JOB_ID"')
    return f"{FIRST_HOST} && {srun} {torchrun} -m dcm {args}"

