"""Command line: `python -m dcm <stage> --config FILE [--set key=value ...]`, one subcommand per stage."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from dcm import tracking
from dcm.config import load_config
from dcm.errors import DCMError

log = logging.getLogger("dcm")

STAGES = {
    "dataset": "procedural clips and the train/eval prompt split",
    "teacher": "pretrain the tiny teacher (flow matching) and check its prompt following",
    "trajectories": "cache the teacher's 50-step ODE trajectories for every training prompt and seed",
    "seme": "train the semantic expert on [kappa, N] (Eq. 6, + Eq. 8 if the variant has TC)",
    "dete": "train the detail expert on [0, kappa] (Eq. 7, + Eq. 10 if the variant has GF)",
    "weightdiff": "normalised L1 distance between two full experts per layer group (Fig. 5; variant od)",
    "vcm": "train the vanilla consistency model: one student on both phases (Table 3, row 1)",
    "lcm": "train the LCM baseline",
    "pcm": "train the PCM baseline",
    "sample": "few-step (or teacher) sampling of one method at one step count",
    "compare": "distance of every sample set to the teacher's 50-step output from the same noise",
    "all": "run every stage above in order on the config (skipping finished ones)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dcm", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", required=True, action="append", metavar="FILE",
                       help="run config (YAML), e.g. config/config.yaml; repeat to deep-merge several in order")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set seme.steps=10 (repeatable)")
        if name in ("seme", "dete", "all", "weightdiff"):
            p.add_argument("--variant", default="od" if name == "weightdiff" else "dcm",
                           help="Table 3 variant from the config's `variants`")
        if name == "sample":
            p.add_argument("--method", required=True, help="teacher, lcm, pcm, or a variant name (e.g. dcm, vcm)")
            p.add_argument("--steps", type=int, required=True, help="number of sampling steps")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        from dcm.stages.common import setup

        setup(cfg)
        log.info("CUDA_VISIBLE_DEVICES=%s SLURM_JOB_ID=%s", os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                 os.environ.get("SLURM_JOB_ID", ""))
        extra = {k: v for k, v in vars(args).items() if k in ("variant", "method", "steps")}
        if args.stage == "all":
            from dcm.stages import pipeline

            with tracking.workflow_run(cfg, "python -m dcm all"):
                pipeline.run(cfg, **extra)
        else:
            with tracking.stage_run(cfg, args.stage, **extra):
                importlib.import_module(f"dcm.stages.{args.stage}").run(cfg, **extra)
    except DCMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
