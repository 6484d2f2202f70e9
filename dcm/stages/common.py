"""Shared plumbing of the stages: output layout, work directories that survive a kill, resolved-config dumps."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import torch
import yaml

from dcm import distributed, tracking
from dcm.backbones import Backbone, load_backbone
from dcm.config import run_dir
from dcm.errors import DCMError
from dcm.io import replace_directory
from dcm.solvers import teacher_sigmas

log = logging.getLogger("dcm")

RESOLVED_CONFIG = "config.resolved.yaml"


def setup(cfg: dict) -> None:
    """Deterministic, thread-limited torch for this process."""
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])


def stage_dir(cfg: dict, *parts: str) -> Path:
    """Final output directory of a stage: <results_dir>/<name>/<parts...>."""
    return run_dir(cfg).joinpath(*parts)


def kappa_dir(cfg: dict, *parts: str) -> Path:
    """Output directory of a kappa-dependent stage (SemE, DetE, their samples and scores): in the run directory,
    or under kappa/<K>/ when this process is a point of the kappa sweep (Fig. 10, right)."""
    point = cfg["kappa_sweep"]["point"]
    return stage_dir(cfg, *(() if point is None else ("kappa", str(point))), *parts)


def require(path: Path, made_by: str) -> Path:
    """`path`, or a clear error naming it and the stage that makes it."""
    if not path.exists():
        raise DCMError(f"missing input {path}: run the '{made_by}' stage first")
    return path


@contextlib.contextmanager
def stage_output(out: Path, cfg: dict):
    """Yield a work directory `<out>.partial` that keeps checkpoints across kills; on success its contents
    (plus the resolved config) replace `out` in one rename, so `out` is either absent or complete. On an
    error before the first checkpoint the work directory is removed. Under torchrun only the main process
    finishes (or cleans up) the output, after every process is done with it."""
    work = out.with_name(out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    except BaseException:
        if distributed.is_main() and not (work / "checkpoint").exists():  # nothing to resume from: no trace
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(OSError):  # a grouping directory such as seme/ made for this output
                work.parent.rmdir()
        raise
    distributed.barrier()
    if not distributed.is_main():
        return
    (work / RESOLVED_CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=True))
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    replace_directory(work, out)
    tracking.current().log_outputs(out)
    log.info("wrote %s", out)


def teacher_network_dir(cfg: dict) -> Path:
    return stage_dir(cfg, "teacher", "network")


def load_teacher(cfg: dict) -> tuple[Backbone, torch.nn.Module]:
    """The backbone adapter and the frozen teacher network in eval mode."""
    directory = require(teacher_network_dir(cfg), "teacher")
    backbone = load_backbone(cfg, directory)
    teacher = backbone.load_network(directory).eval().requires_grad_(False)
    return backbone, teacher


def grid(cfg: dict) -> torch.Tensor:
    """The teacher's sigma grid of this config."""
    return teacher_sigmas(cfg["schedule"]["num_steps"], cfg["schedule"]["shift"])
