"""MLflow tracking of stage runs. One experiment per paper table, a run per stage invocation with the
resolved config as params, step metrics, small outputs as artifacts, and tags for stage, method, steps,
variant, seed, git commit and SLURM job; a parent run per workflow invocation. When tracking is off or
the store cannot be reached, every call is a no-op after one warning, and the stage does its work."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path

from dcm import distributed, methods

PARENT_ENV = "DCM_PARENT_RUN_ID"
ARTIFACT_SUFFIXES = {".json", ".jsonl", ".md", ".csv", ".gif", ".png", ".yaml", ".html"}
ARTIFACT_MAX_BYTES = 5 << 20
#: bounds on MLflow's HTTP requests, unless set in the environment: its defaults (7 retries with backoff,
#: 120 s timeout) keep every stage waiting ~4 minutes on a tracking server that does not answer
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def tracking_uri(cfg: dict) -> str:
    """The configured URI, else a sqlite store under the results directory."""
    return cfg["tracking"].get("uri") or f"sqlite:///{Path(cfg['results_dir']).resolve() / 'mlflow.db'}"


def experiment_name(cfg: dict, stage: str, method: str | None = None, variant: str | None = None,
                    table: str | None = None) -> str:
    """Table 1 (methods), Table 2 (user study), Table 3 (ablation variants), setup (data and teacher) or
    analysis (figures and distances); a point of the kappa sweep has its own (Fig. 10)."""
    if cfg["kappa_sweep"]["point"] is not None:
        return f"{cfg['name']}/fig10-kappa-sweep"
    if table is not None:
        return f"{cfg['name']}/{ {'1': 'table1', '3': 'table3-ablations', 'kappa': 'fig10-kappa-sweep'}[table]}"
    if stage in ("userstudy", "table2"):
        return f"{cfg['name']}/table2-userstudy"
    if stage in ("compare", "weightdiff", "trajdist", "figures"):
        return f"{cfg['name']}/analysis"
    if stage in ("dataset", "teacher", "trajectories", "latents"):
        return f"{cfg['name']}/setup"
    trained = next((m.name for m in methods.METHODS.values() if m.trainer and m.trainer.name == stage), None)
    name = method or variant or trained
    return f"{cfg['name']}/{methods.experiment(cfg, name) if name else 'table3-ablations'}"


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """Nested config as dotted keys with string values."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StageRun:
    """Handle on one MLflow run; a handle without a client does nothing."""

    def __init__(self, client=None, run_id: str | None = None):
        self.client, self.run_id = client, run_id
        self._buffer: list = []

    def _guard(self, action, *args, **kwargs):
        if self.client is None:
            return
        try:
            action(*args, **kwargs)
        except Exception as err:  # a tracking failure must never stop the work
            warnings.warn(f"MLflow logging failed, continuing without it: {err}")
            self.client = None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer numeric metrics of one step; sent in batches."""
        if self.client is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), stamp, step) for k, v in metrics.items() if isinstance(v, (int, float))]
        if len(self._buffer) >= 900:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._guard(self.client.log_batch, self.run_id, metrics=batch)

    def log_outputs(self, directory: Path) -> None:
        """Log the small human-readable files of an output directory (not weights or tensors)."""
        if self.client is None:
            return
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file() and path.suffix in ARTIFACT_SUFFIXES and path.stat().st_size <= ARTIFACT_MAX_BYTES:
                parent = path.parent.relative_to(directory).as_posix()
                self._guard(self.client.log_artifact, self.run_id, str(path), None if parent == "." else parent)


_current = StageRun()


def current() -> StageRun:
    """The run of the stage in progress (a no-op handle outside one)."""
    return _current


def _client(cfg: dict):
    for key, value in HTTP_LIMITS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # its retry lines would be a 2nd warning
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri(cfg))


def _one_line(err: Exception, limit: int = 300) -> str:
    """The first line of an error, shortened: MLflow's HTTP errors nest several tracebacks' worth of text."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def artifact_root(cfg: dict) -> Path:
    """Where new experiments keep their artifacts: beside the sqlite store, never the working directory."""
    return (Path(cfg["results_dir"]) / "mlartifacts").resolve()


def _experiment_id(client, cfg: dict, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=(artifact_root(cfg) / name).as_uri())


#: labels whose values a run name prefixes, so that a point of the kappa sweep or a training seed reads as one
NAMED_LABELS = {"kappa": "kappa", "train_seed": "seed"}


def run_name(stage: str, labels: dict) -> str:
    """A stage run's name in the MLflow UI: the stage and its labels' values, e.g. pcm-4-seed1, dete-dcm-kappa4."""
    return "-".join([stage, *(f"{NAMED_LABELS.get(k, '')}{v}" for k, v in labels.items())])


@contextlib.contextmanager
def stage_run(cfg: dict, stage: str, **labels):
    """Open an MLflow run for one stage and make it `current()` for the duration."""
    global _current
    if not cfg["tracking"]["enabled"] or not distributed.is_main():  # one run per stage, from the main process
        yield _current
        return
    labels = {k: v for k, v in labels.items() if v is not None}
    tags = {"stage": stage, "seed": str(labels.get("train_seed", cfg["seed"])), "git_commit": git_commit(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID", "none"), "backbone": cfg["backbone"]["name"],
            **{k: str(v) for k, v in labels.items()}}
    if os.environ.get(PARENT_ENV):
        tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
    try:
        from mlflow.entities import Param

        client = _client(cfg)
        name = experiment_name(cfg, stage, labels.get("method"), labels.get("variant"), labels.get("table"))
        experiment = _experiment_id(client, cfg, name)
        run = client.create_run(experiment, run_name=run_name(stage, labels), tags=tags)
        client.log_batch(run.info.run_id, params=[Param(k, v[:6000]) for k, v in flatten(cfg).items()])
    except Exception as err:
        warnings.warn(f"MLflow tracking at {tracking_uri(cfg)} is unavailable ({_one_line(err)}); the stage runs untracked")
        yield _current
        return
    _current = StageRun(client, run.info.run_id)
    status = "FAILED"
    try:
        yield _current
        status = "FINISHED"
    finally:
        _current.flush()
        _current._guard(client.set_terminated, run.info.run_id, status)
        _current = StageRun()


def start_workflow_run(cfg: dict, name: str) -> str | None:
    """Open the parent run of one workflow invocation and export its id, so that stage runs started in
    this process or in child processes (SLURM jobs inherit the environment) attach to it."""
    if not cfg["tracking"]["enabled"] or os.environ.get(PARENT_ENV):
        return None
    try:
        client = _client(cfg)
        run = client.create_run(_experiment_id(client, cfg, f"{cfg['name']}/workflow"), run_name=name,
                                tags={"git_commit": git_commit(), "stage": "workflow"})
    except Exception as err:
        warnings.warn(f"MLflow tracking at {tracking_uri(cfg)} is unavailable ({_one_line(err)}); running untracked")
        return None
    os.environ[PARENT_ENV] = run.info.run_id
    return run.info.run_id


def end_workflow_run(cfg: dict, status: str) -> None:
    """Close the parent run opened by `start_workflow_run` with FINISHED or FAILED."""
    run_id = os.environ.pop(PARENT_ENV, None)
    if run_id and cfg["tracking"]["enabled"]:
        with contextlib.suppress(Exception):
            _client(cfg).set_terminated(run_id, status)

