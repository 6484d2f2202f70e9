"""Where every output of a run lives, for the stages and the Snakemake workflow alike (torch-free).

Each function takes the directory it builds on (a run, a point of the kappa sweep or another training seed's
students) and returns a Path;
the workflow passes strings with wildcards such as "{method}" through the same functions. Layout:

    <results_dir>/<name>/                      the run (`run_dir`)
        dataset/ teacher/network/ trajectories/ <trainer>/network/ (vcm, lcm, ...)  pcm/<P>/network/ (P phases)
        seme/<tc|plain>/network/  dete/<variant>/   samples/<method>-<steps>/  eval/<method>-<steps>/
        kappa/<K>/{seme,dete,samples,eval}/...   one point of the kappa sweep (Fig. 10, right)
        seed/<S>/{vcm,lcm,pcm,seme,dete,samples,eval}/...   the students of one more training seed
        latency/ compare/ weightdiff/ trajdist/ figures/ userstudy/ userstudy-answers/ tables/<table>/
        logs/[kappa<K>/|seed<S>/]<job>.log  benchmarks/[kappa<K>/|seed<S>/]<job>.tsv
"""

from __future__ import annotations

from pathlib import Path

from dcm.errors import DCMError

NETWORK = "network"  # a trained network inside its stage's output
DETAIL_WEIGHTS = "detail_expert.safetensors"  # a parameter-efficient DetE: LoRA and copied timestep layers
DETAIL_CONFIG = "detail_expert.json"  # its LoRA rank and alpha, copied layers, and the SemE it was trained on
PARAMETERS = "parameters.json"  # a DetE's parameters beyond its SemE, and its backbone's (Table 3)
SAMPLES = "samples.safetensors"  # latents and decoded videos of a sample set
LATENCY = "latency.json"  # Table 1's latency column, every sampler timed interleaved in one job
METRICS = "metrics.jsonl"  # a training stage's metrics, one JSON line per step
METRICS_TABLE = "metrics.csv"  # the same as a table, for `dvc plots`
TABLE_DIRS = {"1": "table1", "2": "table2", "3": "table3", "kappa": "kappa_sweep"}


def run_dir(cfg: dict) -> Path:
    """Directory that holds every output of this run."""
    return Path(cfg["results_dir"]) / cfg["name"]


def point_dir(run: str | Path, kappa: int | str | None) -> Path:
    """Where kappa-dependent outputs live: the run itself, or kappa/<K>/ for a point of the kappa sweep."""
    return Path(run) if kappa is None else Path(run) / "kappa" / str(kappa)


def seed_dir(run: str | Path, seed: int | str | None) -> Path:
    """Where the students of a training seed live: the run itself (its own seed), or seed/<S>/ for another."""
    return Path(run) if seed is None else Path(run) / "seed" / str(seed)


def trained_dir(cfg: dict) -> Path:
    """This process's students (VCM, LCM, PCM; SemE and DetE outside a kappa point): the run, or seed/<S>/
    when a stage runs with --train-seed S."""
    return seed_dir(run_dir(cfg), cfg["train_seed_point"])


def own_point(cfg: dict) -> Path:
    """This process's point directory: the run, kappa/<K>/ when a stage runs with --kappa K, or seed/<S>/ with
    --train-seed S."""
    kappa = cfg["kappa_sweep"]["point"]
    return trained_dir(cfg) if kappa is None else point_dir(run_dir(cfg), kappa)


def train_seed_point(cfg: dict, seed: int) -> Path:
    """The students' directory of training seed `seed` in a run config: the run's own `seed` is the run itself."""
    return seed_dir(run_dir(cfg), None if seed == cfg["seed"] else seed)


def sweep_point(cfg: dict, kappa: int) -> Path:
    """The point directory of `kappa` in the kappa sweep of a run config: the configured kappa is the run itself."""
    from dcm.schedule import PhaseSchedule

    return point_dir(run_dir(cfg), None if kappa == PhaseSchedule.from_config(cfg).kappa else kappa)


def sample_set(method: str, steps: int | str) -> str:
    """Name of the sample set of `method` at `steps` steps, e.g. dcm-4."""
    return f"{method}-{steps}"


def parse_sample_set(name: str) -> tuple[str, int]:
    """(method, steps) of a sample-set name."""
    method, _, steps = name.rpartition("-")
    if not method or not steps.isdigit():
        raise DCMError(f"sample set {name!r} is not <method>-<steps>")
    return method, int(steps)


def trainer_dir(run: str | Path, trainer: str) -> Path:
    """Output of a training stage that makes one network per run (vcm, lcm, ...)."""
    return Path(run) / trainer


def phased_trainer_dir(run: str | Path, trainer: str, phases: int | str) -> Path:
    """Output of a training stage that makes one network per phase count (pcm): <run>/<trainer>/<phases>/."""
    return Path(run) / trainer / str(phases)


def seme_dir(point: str | Path, temporal_coherence: bool | str) -> Path:
    """SemE output: one per temporal-coherence setting (tc | plain), shared by the variants that agree."""
    name = temporal_coherence if isinstance(temporal_coherence, str) else ("tc" if temporal_coherence else "plain")
    return Path(point) / "seme" / name


def dete_dir(point: str | Path, variant: str) -> Path:
    """DetE output of a Table 3 variant."""
    return Path(point) / "dete" / variant


def samples_dir(point: str | Path, name: str) -> Path:
    """A sample set's videos, latents and schedule."""
    return Path(point) / "samples" / name


def vbench_dir(point: str | Path, name: str) -> Path:
    """A sample set's VBench videos (its prompt suite, 5 seeds per prompt) and their manifest."""
    return Path(point) / "vbench" / name


def latency_dir(run: str | Path) -> Path:
    """Table 1's latency measurement: every Table 1 sampler timed interleaved in one job (file `LATENCY`)."""
    return Path(run) / "latency"


def eval_dir(point: str | Path, name: str) -> Path:
    """A sample set's scores."""
    return Path(point) / "eval" / name


def table_dir(run: str | Path, table: str) -> Path:
    """One of the paper's tables (1, 2, 3) or the kappa sweep."""
    return Path(run) / "tables" / TABLE_DIRS[table]


def table_file(run: str | Path, table: str, suffix: str) -> Path:
    """A table's file in its directory: `suffix` ".csv", ".md" or ".json" (rows, for `dvc metrics` and figures)."""
    return table_dir(run, table) / f"{TABLE_DIRS[table]}{suffix}"


def answers_dir(cfg: dict) -> Path:
    """The raters' answer files: userstudy.answers_dir, else <run>/userstudy-answers (outside the userstudy
    stage's output, so rerunning it never deletes answers)."""
    configured = cfg["userstudy"].get("answers_dir")
    return Path(configured) if configured else run_dir(cfg) / "userstudy-answers"


def _job_folder(kappa: int | str | None, seed: int | str | None) -> str:
    return "" if kappa is None and seed is None else f"kappa{kappa}" if seed is None else f"seed{seed}"


def log_file(run: str | Path, job: str, kappa: int | str | None = None, seed: int | str | None = None) -> Path:
    """Log of one workflow job (logs/kappa<K>/ for a point of the kappa sweep, logs/seed<S>/ for a training seed)."""
    return Path(run) / "logs" / _job_folder(kappa, seed) / f"{job}.log"


def benchmark_file(run: str | Path, job: str, kappa: int | str | None = None, seed: int | str | None = None) -> Path:
    """Snakemake benchmark of one workflow job (in the same folders as its log)."""
    return Path(run) / "benchmarks" / _job_folder(kappa, seed) / f"{job}.tsv"


def require(path: Path, made_by: str) -> Path:
    """`path`, or a clear error naming it and the stage that makes it."""
    if not path.exists():
        raise DCMError(f"missing input {path}: run the '{made_by}' stage first")
    return path


def seed_slices(prompts: int, seeds: int) -> list[slice]:
    """The videos of each sampling seed in a sample set, which is seed-major: video k * prompts + i is prompt i
    under seed k."""
    return [slice(k * prompts, (k + 1) * prompts) for k in range(seeds)]
