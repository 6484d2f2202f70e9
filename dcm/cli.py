"""Command line: `python -m dcm <stage> --config FILE [--set key=value ...]`, one subcommand per stage."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from dcm import tracking
from dcm.config import at_kappa, load_config
from dcm.errors import DCMError

log = logging.getLogger("dcm")

STAGES = {
    "dataset": "train/eval prompts: procedural clips (tiny) or the lines of data.prompt_file (real backbones)",
    "teacher": "pretrain the tiny teacher (flow matching), or check and point to a pretrained pipeline",
    "trajectories": "cache the teacher's 50-step ODE trajectories for every training prompt and seed",
    "seme": "train the semantic expert on [kappa, N] (Eq. 6, + Eq. 8 if the variant has TC)",
    "dete": "train the detail expert on [0, kappa] (Eq. 7, + Eq. 10 if the variant has GF)",
    "weightdiff": "normalised L1 distance between two full experts per layer group (Fig. 5; variant od)",
    "vcm": "train the vanilla consistency model: one student on both phases (Table 3, row 1)",
    "lcm": "train the LCM baseline",
    "pcm": "train the PCM baseline",
    "sample": "few-step (or teacher) sampling of one method at one step count",
    "compare": "distance of every sample set to the teacher's 50-step output from the same noise",
    "evaluate": "score one sample set: tinybench on the tiny backbone, VBench (own environment) on real ones",
    "trajdist": "L1 distance between adjacent teacher steps along the cached trajectories and the kappa it suggests (Fig. 10)",
    "userstudy": "blinded pairwise rater sheets (DCM vs LCM, DCM vs PCM) and their key, kept apart",
    "table2": "aggregate returned user-study answers into Table 2 (share preferring DCM, 95% Wilson interval)",
    "tables": "Table 1, Table 3 or the kappa sweep (Fig. 10, right) as CSV and Markdown from the evaluation and latency files",
    "figures": "the paper's figures (Fig. 2, 3, 5, 10 and sample grids) as PNG from the run's result files",
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
        if name in ("seme", "dete", "weightdiff"):
            p.add_argument("--variant", default="od" if name == "weightdiff" else "dcm",
                           help="Table 3 variant from the config's `variants`")
        if name in ("sample", "evaluate"):
            p.add_argument("--method", required=True, help="teacher, lcm, pcm, a variant name (e.g. dcm, vcm) or an expert mix "
                           "<seme|vcm>+<dete|vcm>[@variant] (Fig. 3)")
            p.add_argument("--steps", type=int, required=True, help="number of sampling steps")
        if name in ("seme", "dete", "sample", "evaluate"):
            p.add_argument("--kappa", type=int, metavar="K",
                           help="one point of the kappa sweep (Fig. 10, right): schedule.kappa=K, outputs under "
                           "<run>/kappa/K/ (trajectories, teacher and the teacher's samples from the run itself)")
        if name == "tables":
            p.add_argument("--table", required=True, choices=["1", "3", "kappa"],
                           help="which table of the paper; kappa: the kappa sweep of Fig. 10 (right)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        if getattr(args, "kappa", None) is not None:
            cfg = at_kappa(cfg, args.kappa)
        from dcm.stages.common import setup

        setup(cfg)
        log.info("CUDA_VISIBLE_DEVICES=%s SLURM_JOB_ID=%s RANK=%s WORLD_SIZE=%s",
                 os.environ.get("CUDA_VISIBLE_DEVICES", ""), os.environ.get("SLURM_JOB_ID", ""),
                 os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1"))
        extra = {k: v for k, v in vars(args).items() if k in ("variant", "method", "steps", "table")}
        with tracking.stage_run(cfg, args.stage, **extra, kappa=cfg["kappa_sweep"]["point"]):
            importlib.import_module(f"dcm.stages.{args.stage}").run(cfg, **extra)
    except DCMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
