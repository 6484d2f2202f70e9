# Config validation (the package's JSON schema, with defaults), paths, and the stage command line.
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from dcm import tracking
from dcm.config import SCHEMA_PATH, check_consistency
from dcm.stages import distill


validate(config, str(SCHEMA_PATH))
check_consistency(config, "snakemake config")

RUN = f"{config['results_dir']}/{config['name']}"
VARIANTS = config["variants"]
STEPS = config["sampling"]["steps"]
TEACHER_STEPS = config["sampling"]["teacher_steps"]

# The stages read exactly what Snakemake read: the same config files, merged in the same order, plus
# the --config overrides.
_files = workflow.config_settings.configfiles or [Path("config/config.yaml").resolve()]
DCM = " ".join(
    [f"{shlex.quote(sys.executable)} -m dcm {{stage}}"]
    + [f"--config {shlex.quote(str(f))}" for f in _files]
    + [f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in workflow.config_settings.config.items()]
)


def dcm(stage):
    """The shell command of one stage, with the workflow's config."""
    return DCM.format(stage=stage)


def res(rule, key, default):
    """A generic resource of `rule` from config `resources`, falling back to `resources.default`."""
    table = config["resources"]
    return table.get(rule, {}).get(key, table.get("default", {}).get(key, default))


def resources_of(rule):
    return dict(
        gpu=res(rule, "gpu", 0),
        mem_mb=res(rule, "mem_mb", 4000),
        runtime=res(rule, "runtime", 60),
        cpus_per_task=res(rule, "cpus_per_task", config["threads"]),
    )


def seme_dir(variant):
    """SemE output of `variant`, by the package's own layout rule."""
    return str(distill.seme_dir(config, VARIANTS[variant]))


def seme_variant(tc):
    """A decoupled variant whose SemE has this temporal-coherence setting (they share one SemE)."""
    for name, flags in VARIANTS.items():
        if flags["decouple"] and flags["temporal_coherence"] == (tc == "tc"):
            return name
    raise ValueError(f"no decoupled variant with temporal coherence {tc}")


def method_inputs(wildcards):
    """What `sample` needs for one method: its trained networks (none for the teacher)."""
    method = wildcards.method
    if method == "teacher":
        return []
    if method in ("lcm", "pcm"):
        return [f"{RUN}/{method}"]
    if not VARIANTS[method]["decouple"]:
        return [f"{RUN}/vcm"]
    return [seme_dir(method), f"{RUN}/dete/{method}"]
