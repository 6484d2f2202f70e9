# Config validation (the package's JSON schema, with defaults), paths, and the stage command line.
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from dcm import naming, tracking
from dcm.config import SCHEMA_PATH, check_consistency


validate(config, str(SCHEMA_PATH))
check_consistency(config, "snakemake config")

RUN = f"{config['results_dir']}/{config['name']}"
THREADS = config["threads"]  # each stage runs torch with this many threads
VARIANTS = config["variants"]
TEACHER_STEPS = config["sampling"]["teacher_steps"]
TABLE_SETS = {
    "1": naming.table1_sets(config),
    "3": [f"{v}-{config['tables']['ablation_steps']}" for v in VARIANTS],
}
SAMPLE_SETS = naming.sample_sets(config)
FIGURE_SETS = naming.figure3_sets(config)
USERSTUDY_SETS = sorted(
    {f"{m}-{config['userstudy']['steps']}" for pair in config["userstudy"]["comparisons"] for m in pair}
)
ANSWERS_DIR = config["userstudy"].get("answers_dir") or f"{RUN}/userstudy-answers"
# Fig. 10 (right): the sample set the kappa sweep scores at each kappa
SWEEP_SET = f"{config['tables']['method']}-{config['tables']['ablation_steps']}"

wildcard_constraints:
    kappa=r"\d+",

# The stages read exactly what Snakemake read: the same config files, merged in the same order, plus
# the --config overrides.
_files = workflow.config_settings.configfiles or [Path("config/config.yaml").resolve()]
PYTHON = shlex.quote(sys.executable)
CONFIG_ARGS = " ".join(
    [f"--config {shlex.quote(str(f))}" for f in _files]
    + [f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in workflow.config_settings.config.items()]
)
TRAINING_RULES = {"teacher", "seme", "dete", "baseline"}


def dcm(stage, rule=None):
    """The shell command of one stage with the workflow's config. A training rule given several GPUs starts
    one process per GPU with torchrun; the training loop averages gradients across them."""
    gpus = res(rule or stage, "gpu", 0)
    launch = PYTHON
    if (rule or stage) in TRAINING_RULES and gpus > 1:
        launch += f" -m torch.distributed.run --standalone --nproc-per-node {gpus}"
    return f"{launch} -m dcm {stage} {CONFIG_ARGS}"


def res(rule, key, default):
    """A generic resource of `rule` from config `resources`, falling back to `resources.default`."""
    table = config["resources"]
    return table.get(rule, {}).get(key, table.get("default", {}).get(key, default))


def resources_of(rule):
    """Generic Snakemake resources of `rule`; cluster specifics (partition, account) stay in the profile."""
    resources = dict(
        gpu=res(rule, "gpu", 0),
        mem_mb=res(rule, "mem_mb", 4000),
        runtime=res(rule, "runtime", 60),
        cpus_per_task=res(rule, "cpus_per_task", config["threads"]),
    )
    if resources["gpu"] and res(rule, "gpu_model", None):
        resources["gpu_model"] = res(rule, "gpu_model", None)
    return resources


def point_dir(wildcards):
    """Where a job's kappa-dependent inputs and outputs live: the run directory, or kappa/<K>/ for a job of
    the kappa sweep (rules *_at_kappa, which have a `kappa` wildcard)."""
    kappa = wildcards.get("kappa")
    return RUN if kappa is None else f"{RUN}/kappa/{kappa}"


def kappa_args(wildcards):
    """The stage option that makes a job one point of the kappa sweep; nothing for the run's own jobs."""
    kappa = wildcards.get("kappa")
    return "" if kappa is None else f" --kappa {int(kappa)}"


def seme_dir(variant, point=RUN):
    """SemE output of `variant`, by the package's own layout rule."""
    return f"{point}/seme/{naming.seme_name(VARIANTS[variant])}"


def seme_variant(tc):
    """A decoupled variant whose SemE has this temporal-coherence setting (they share one SemE)."""
    for name, flags in VARIANTS.items():
        if flags["decouple"] and flags["temporal_coherence"] == (tc == "tc"):
            return name
    raise ValueError(f"no decoupled variant with temporal coherence {tc}")


def variant_inputs(variant, point=RUN):
    """The trained networks of one Table 3 variant: VCM, or its SemE and DetE."""
    if not VARIANTS[variant]["decouple"]:
        return [f"{RUN}/vcm"]
    return [seme_dir(variant, point), f"{point}/dete/{variant}"]


def method_inputs(wildcards):
    """What `sample` needs for one method: its trained networks (none for the teacher); an expert mix of
    Fig. 3 needs VCM and its variant's experts."""
    method = wildcards.method
    if method == "teacher":
        return []
    if method in ("lcm", "pcm"):
        return [f"{RUN}/{method}"]
    mix = naming.parse_mixed_method(method)
    if mix is not None:
        return [f"{RUN}/vcm", *variant_inputs(mix.variant)]
    return variant_inputs(method, point_dir(wildcards))


def sweep_eval_dir(kappa):
    """The scores of the kappa sweep's sample set at one kappa: the run's own at the configured kappa."""
    point = RUN if kappa == config["schedule"]["kappa"] else f"{RUN}/kappa/{kappa}"
    return f"{point}/eval/{SWEEP_SET}"
