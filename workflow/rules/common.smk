# Config validation (the package's JSON schema, with defaults), paths, and the stage command line.
import json
import shlex
import sys
from pathlib import Path

from dcm import launch, layout, methods, tracking
from dcm.backbone_specs import backbone_spec
from dcm.config import at_kappa, at_train_seed, config_hash, validate
from dcm.errors import DCMError
from dcm.shard_manifest import check_cache


# what an error names as the config's source: the files, and `--config` when it overrides them
CONFIG_SOURCE = " + ".join([*map(str, workflow.config_settings.configfiles or ["config/config.yaml"]),
                            *(["--config"] if workflow.config_settings.config else [])])
try:  # the package's JSON schema (defaults filled in) and cross-key rules, as `python -m dcm` applies them
    config.update(validate(config, CONFIG_SOURCE))
except DCMError as err:  # one line, no traceback
    sys.exit(f"error: {err}")

RUN = str(layout.run_dir(config))
THREADS = config["threads"]  # each stage runs torch with this many threads
VARIANTS = config["variants"]
TEACHER_SET = layout.sample_set("teacher", config["sampling"]["teacher_steps"])
TABLE_SETS = {"1": methods.table1_sets(config), "3": methods.table3_sets(config)}
SAMPLE_SETS = methods.sample_sets(config)
FIGURE_SETS = methods.figure3_sets(config)
USERSTUDY_SETS = methods.userstudy_sets(config)
ANSWERS_DIR = str(layout.answers_dir(config))
SWEEP_SET = methods.sweep_set(config)  # Fig. 10 (right): the set the kappa sweep scores at each kappa
EXTRA_SEEDS = config["extra_train_seeds"]  # the students trained again at each, under <run>/seed/<S>/
SEED_SETS = methods.seed_sets(config)  # what each training seed samples and scores (Tables 1 and 3)
# the `baseline` wildcard: training stages that make one network per run (rule baseline), or one per phase count
# (rule phased_baseline)
TRAINERS = "|".join(name for name, trainer in methods.TRAINERS.items() if not trainer.per_phase_count)
PHASED_TRAINERS = "|".join(name for name, trainer in methods.TRAINERS.items() if trainer.per_phase_count)

wildcard_constraints:
    kappa=r"\d+",
    seed=r"\d+",

# The stages read exactly what Snakemake read: the same config files, merged in the same order, plus
# the --config overrides.
_files = workflow.config_settings.configfiles or [Path("config/config.yaml").resolve()]
PYTHON = shlex.quote(sys.executable)
CONFIG_ARGS = " ".join(
    [f"--config {shlex.quote(str(f))}" for f in _files]
    + [f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in workflow.config_settings.config.items()]
).replace("{", "{{").replace("}", "}}")  # a mapping override's braces are not Snakemake placeholders


def dcm(stage, rule=None):
    """The shell command of one stage with the workflow's config: one process, one per GPU under torchrun, or
    across nodes with srun + torchrun (dcm/launch.py)."""
    return launch.command(config, rule or stage, PYTHON, f"{stage} {CONFIG_ARGS}")


def resources_of(rule):
    """Snakemake resources of `rule`, multi-node ones included; cluster specifics (partition, account) stay in
    the profile."""
    return launch.job_resources(config, rule)


def checked(wildcards):
    """The wildcards of a job, once its method, step count, variant, kappa and training seed are ones the config
    can run; a target that asks for anything else stops the workflow with one line, before any job starts."""
    values = dict(wildcards.items())
    try:
        cfg = at_kappa(config, int(values["kappa"]), "kappa") if "kappa" in values else config
        cfg = at_train_seed(cfg, int(values["seed"]), "seed") if "seed" in values else cfg
        methods.check_arguments(cfg, values)
    except DCMError as err:
        sys.exit(f"error: a target asks for {', '.join(f'{k}={v}' for k, v in values.items())}: {err}")
    return wildcards


def scored_videos(wildcards):
    """What `evaluate` scores for one method and step count: its sample set (tinybench), or its videos of VBench's
    prompt suite (vbench_sample) on a backbone VBench scores."""
    wildcards = checked(wildcards)
    name, point = layout.sample_set(wildcards.method, wildcards.steps), point_dir(wildcards)
    videos = layout.vbench_dir if backbone_spec(config).benchmark == "vbench" else layout.samples_dir
    return path(videos, point, name)


def trained_dir(wildcards):
    """Where a job's students live: the run, or seed/<S>/ for a job of another training seed (rules *_at_seed,
    which have a `seed` wildcard)."""
    return str(layout.seed_dir(RUN, wildcards.get("seed")))


def point_dir(wildcards):
    """Where a job's kappa-dependent inputs and outputs live: its students' directory, or kappa/<K>/ for a job of
    the kappa sweep (rules *_at_kappa, which have a `kappa` wildcard)."""
    kappa = wildcards.get("kappa")
    return trained_dir(wildcards) if kappa is None else str(layout.point_dir(RUN, kappa))


def point_args(wildcards):
    """The stage option that makes a job one point of the kappa sweep or one more training seed; nothing for the
    run's own jobs."""
    kappa, seed = wildcards.get("kappa"), wildcards.get("seed")
    return "".join([*([f" --kappa {int(kappa)}"] if kappa is not None else []),
                    *([f" --train-seed {int(seed)}"] if seed is not None else [])])


def path(function, *args):
    """A layout path as the string Snakemake wants, e.g. path(layout.samples_dir, RUN, "{method}-{steps}")."""
    return str(function(*args))


def seme_variant(tc):
    """A decoupled variant whose SemE has this temporal-coherence setting (they share one SemE)."""
    for name, flags in VARIANTS.items():
        if flags["decouple"] and layout.seme_dir("", flags["temporal_coherence"]).name == tc:
            return name
    raise ValueError(f"no decoupled variant with temporal coherence {tc}")


def method_inputs(wildcards):
    """What `sample` needs for one method and step count: the training outputs its registry entry names."""
    entry = methods.method(config, checked(wildcards).method)
    return [str(p) for p in methods.networks(config, entry, trained_dir(wildcards), point_dir(wildcards),
                                             int(wildcards.steps))]


def table1_networks(wildcards):
    """What `latency` needs: the training outputs of every Table 1 sample set."""
    sets = map(layout.parse_sample_set, TABLE_SETS["1"])
    return sorted({str(p) for m, k in sets for p in methods.networks(config, methods.method(config, m), RUN, RUN, k)})


def phases_args(wildcards):
    """The stage option that makes a training job one network per phase count; nothing for one per run."""
    phases = checked(wildcards).get("phases")
    return "" if phases is None else f" --phases {int(phases)}"


def trainer_sections(wildcards):
    """Hash of the config sections a training stage reads (its registry entry): a change reruns it."""
    return config_hash(config, *methods.TRAINERS[wildcards.baseline].reads)


def table_evals(table):
    """The scores a table reads: each of its sets from the run, and its trained sets from every training seed."""
    return [path(layout.eval_dir, RUN, s) for s in TABLE_SETS[table]] + [
        path(layout.eval_dir, layout.seed_dir(RUN, seed), s) for seed in EXTRA_SEEDS for s in TABLE_SETS[table]
        if s in SEED_SETS]


def sweep_eval_dir(kappa):
    """The scores of the kappa sweep's sample set at one kappa: the run's own at the configured kappa."""
    return path(layout.eval_dir, layout.sweep_point(config, kappa), SWEEP_SET)
