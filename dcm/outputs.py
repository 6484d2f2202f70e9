"""Stage outputs that are either absent or complete: a work directory that keeps checkpoints across kills,
published in one rename with the resolved config beside it."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import yaml

from dcm import distributed, tracking
from dcm.io import replace_directory

log = logging.getLogger("dcm")

RESOLVED_CONFIG = "config.resolved.yaml"


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
