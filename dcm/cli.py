"""Command line: `python -m dcm <stage> --config FILE [--set key=value ...]`, one subcommand per stage."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from dcm import methods, tracking
from dcm.config import at_kappa, at_train_seed, load_config, train_seed
from dcm.errors import DCMError
from dcm.io import check_writable

log = logging.getLogger("dcm")

#: the stages one point of the kappa sweep or one more training seed runs (the trainers run per seed too)
SEED_STAGES = ("seme", "dete", "sample", "vbench_sample", "evaluate")

#: stage -> (one-line help, "module:function" that runs it); the training stages of the registry follow
STAGES = {
    "dataset": ("train/eval prompts: procedural clips (tiny) or the lines of data.prompt_file (real backbones)",
                "dcm.stages.dataset:run"),
    "teacher": ("pretrain the tiny teacher (flow matching), or check and point to a pretrained pipeline",
                "dcm.stages.teacher:run"),
    "trajectories": ("cache the teacher's 50-step ODE trajectories for every training prompt and seed",
                     "dcm.stages.trajectories:run"),
    "latents": ("encode the training videos of trajectories.videos once with the VAE (trajectories.mode: online)",
                "dcm.stages.latents:run"),
    "seme": ("train the semantic expert on [kappa, N] (Eq. 6, + Eq. 8 if the variant has TC)", "dcm.stages.seme:run"),
    "dete": ("train the detail expert on [0, kappa] (Eq. 7, + Eq. 10 if the variant has GF)", "dcm.stages.dete:run"),
    "weightdiff": ("normalised L1 distance between two full experts per layer group (Fig. 5; variant od)",
                   "dcm.stages.weightdiff:run"),
    **{name: (trainer.help, trainer.run) for name, trainer in methods.TRAINERS.items()},
    "sample": ("few-step (or teacher) sampling of one method at one step count", "dcm.stages.sample:run"),
    "latency": ("Table 1's latency column: every Table 1 sampler timed interleaved in one process (batch 1, "
                "decode included)", "dcm.stages.latency:run"),
    "compare": ("distance of every sample set to the teacher's 50-step output from the same noise",
                "dcm.stages.compare:run"),
    "vbench_sample": ("VBench's videos of one method and step count: its prompt suite, 5 seeds each, mp4 at the "
                      "backbone's fps", "dcm.stages.vbench_sample:run"),
    "evaluate": ("score one method and step count: tinybench (tiny: its sample set) or VBench (own environment: "
                 "the vbench_sample videos)", "dcm.stages.evaluate:run"),
    "trajdist": ("L1 distance between adjacent teacher steps along the cached trajectories and the kappa it "
                 "suggests (Fig. 10)", "dcm.stages.trajdist:run"),
    "userstudy": ("blinded pairwise rater sheets (DCM vs LCM, DCM vs PCM) and their key, kept apart",
                  "dcm.stages.userstudy:run"),
    "table2": ("aggregate returned user-study answers into Table 2 (share preferring DCM, 95% Wilson interval)",
               "dcm.stages.table2:run"),
    "tables": ("Table 1, Table 3 or the kappa sweep (Fig. 10, right) as CSV and Markdown from the evaluation and "
               "latency files", "dcm.stages.tables:run"),
    "export": ("a distilled DCM variant, VCM or PCM as a stock diffusers pipeline directory "
               "(Wan, HunyuanVideo, CogVideoX)",
               "dcm.stages.export:run"),
    "figures": ("the paper's figures (Fig. 2, 3, 5, 10 and sample grids) as PNG from the run's result files",
                "dcm.stages.figures:run"),
    "schedule": ("the teacher grid (sigmas, timesteps), guidance, and every method's phase edges, step indices "
                 "and expert switch", "dcm.stages.schedule:run"),
    "plan": ("per-GPU memory of every GPU stage (weights, gradients, optimizer, frozen copies, activations) and "
             "whether it fits", "dcm.stages.plan:run"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dcm", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (help_text, _) in STAGES.items():
        escaped = help_text.replace("%", "%%")  # argparse %-formats help strings
        p = sub.add_parser(name, help=escaped, description=escaped)
        p.add_argument("--config", required=True, action="append", metavar="FILE",
                       help="run config (YAML), e.g. config/config.yaml; repeat to deep-merge several in order")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set seme.steps=10 (repeatable)")
        if name in ("seme", "dete", "weightdiff"):
            p.add_argument("--variant", default=methods.MIX_VARIANT if name == "weightdiff" else "dcm",
                           help="Table 3 variant from the config's `variants`")
        if name in ("sample", "vbench_sample", "evaluate"):
            p.add_argument("--method", required=True, help="a method of the registry (" + ", ".join(methods.METHODS)
                           + "), a variant name (e.g. dcm, vcm) or an expert mix <seme|vcm>+<dete|vcm>[@variant] "
                           "(Fig. 3)")
            p.add_argument("--steps", type=int, required=True, help="number of sampling steps")
        if name == "trajectories":
            p.add_argument("--shard", type=int, metavar="K", help="generate only the shards i with i mod N = K "
                           "(one of N parallel jobs; the stage without --shard then writes the manifest)")
            p.add_argument("--shards", type=int, metavar="N", help="number of parallel generation jobs")
        if name == "export":
            p.add_argument("--method", required=True, help="a variant name (e.g. dcm, vcm) or pcm")
        if name in methods.TRAINERS and methods.TRAINERS[name].per_phase_count:
            p.add_argument("--phases", type=int, metavar="P",
                           help=f"train P uniform phases, output <run>/{name}/<P>/ (1..schedule.num_steps; "
                           "default: pcm.phases, required when it is 'steps')")
        if name in SEED_STAGES:
            p.add_argument("--kappa", type=int, metavar="K",
                           help="one point of the kappa sweep (Fig. 10, right): schedule.kappa=K, outputs under "
                           "<run>/kappa/K/ (trajectories, teacher and the teacher's samples from the run itself)")
        if name in (*SEED_STAGES, *methods.TRAINERS):
            p.add_argument("--train-seed", type=int, metavar="S",
                           help="the students of training seed S (seed, or one of extra_train_seeds): outputs "
                           "under <run>/seed/S/ (trajectories, teacher and the teacher's samples from the run "
                           "itself)")
        if name == "plan":
            p.add_argument("--json", dest="as_json", action="store_true", help="print a JSON list, one object per stage")
        if name == "schedule":
            p.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")
        if name == "tables":
            p.add_argument("--table", required=True, choices=["1", "3", "kappa"],
                           help="which table of the paper; kappa: the kappa sweep of Fig. 10 (right)")
    return parser


def seed_torch(cfg: dict) -> None:
    """Deterministic, thread-limited torch for this process."""
    import torch

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(train_seed(cfg))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        if getattr(args, "kappa", None) is not None:
            cfg = at_kappa(cfg, args.kappa)
        if getattr(args, "train_seed", None) is not None:
            cfg = at_train_seed(cfg, args.train_seed)
        extra = {k: v for k, v in vars(args).items()
                 if k in ("variant", "method", "steps", "table", "as_json", "shard", "shards", "phases")}
        if "phases" in extra:
            extra["phases"] = methods.trained_phases(cfg, extra["phases"])
        methods.check_arguments(cfg, extra)
        check_writable(Path(cfg["results_dir"]), "results_dir")
        seed_torch(cfg)
        log.info("CUDA_VISIBLE_DEVICES=%s SLURM_JOB_ID=%s RANK=%s WORLD_SIZE=%s",
                 os.environ.get("CUDA_VISIBLE_DEVICES", ""), os.environ.get("SLURM_JOB_ID", ""),
                 os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1"))
        module, _, function = STAGES[args.stage][1].partition(":")
        with tracking.stage_run(cfg, args.stage, **extra, kappa=cfg["kappa_sweep"]["point"],
                                train_seed=cfg["train_seed_point"]):
            getattr(importlib.import_module(module), function)(cfg, **extra)
    except DCMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
