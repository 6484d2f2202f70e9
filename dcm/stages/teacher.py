"""Stage `teacher`: pretrain the tiny video teacher with flow matching, then check that its 50-step samples
follow the prompts (colour, shape, motion direction) on the train and held-out prompts. A real backbone is
not trained: its pretrained pipeline is loaded, probed for a finite velocity and recorded by reference."""

from __future__ import annotations

import time

import torch

from dcm import layout
from dcm.backbone_specs import backbone_spec
from dcm.backbones import pretrained_adapter
from dcm.backbones.diffusers_backbone import POINTER_FILE, write_pointer
from dcm.backbones.tiny import TinyBackbone
from dcm.data.procedural import vocabulary
from dcm.data.prompts import load_split
from dcm.errors import DCMError
from dcm.eval.prompt_following import prompt_following
from dcm.experts import Expert
from dcm.io import load_tensors, read_json, write_json
from dcm.pretrain import ClipSampler, FlowMatching
from dcm.sampling import euler_sample, seeded_noise
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule
from dcm.training import TrainLoop, adamw, check_batch_fits, scale_options
from dcm.video import save_filmstrip, save_gif

MAX_WORDS = 5
PROBE_PROMPT = "a red kite drifting over a green hill"
LOSS_BY_SIGMA = "loss_by_sigma.json"
SIGMA_BUCKETS = [i / 10 for i in range(11)]  # ten equal noise buckets of [0, 1]


def run(cfg: dict) -> None:
    if backbone_spec(cfg).pretrained:
        record_pretrained(cfg)
        return
    dataset = layout.require(layout.run_dir(cfg) / "dataset", "dataset")
    clips = load_tensors(dataset / "clips.safetensors")["clips"]
    check_batch_fits("teacher", cfg["teacher"]["batch_size"], tuple(clips.shape[1:]), tensors_per_sample=3)  # x0, noise, x_t
    records = read_json(dataset / "prompts.json")["clips"]
    backbone = TinyBackbone.from_config(cfg["backbone"], vocabulary(), MAX_WORDS)
    net = backbone.new_network(cfg["backbone"]["model"])
    expert = Expert(net)
    tcfg = cfg["teacher"]
    objective = FlowMatching(expert.velocity_fn(backbone), tcfg["logit_normal_mean"], tcfg["logit_normal_std"],
                             tcfg["uniform_fraction"])
    cond = backbone.encode_prompts([r["caption"] for r in records])
    with stage_output(layout.run_dir(cfg) / "teacher", cfg) as work:
        TrainLoop(
            student=expert,
            optimizer=adamw(net.parameters(), tcfg["lr"]),
            objective=objective,
            sample_batch=ClipSampler(clips, cond, tcfg["batch_size"]),
            out_dir=work, steps=tcfg["steps"], seed=cfg["seed"], checkpoint_every=tcfg["checkpoint_every"],
            grad_clip=cfg["distill"]["grad_clip"], description="teacher", **scale_options(cfg, backbone),
        ).run()
        net.eval()
        backbone.save_network(net, work / layout.NETWORK)
        losses = objective.loss_by_sigma(clips, cond, SIGMA_BUCKETS, cfg["seed"], tcfg["batch_size"])
        write_json(work / LOSS_BY_SIGMA, {"buckets": list(zip(SIGMA_BUCKETS[:-1], SIGMA_BUCKETS[1:])),
                                          "loss": losses, "clips": len(clips)})
        report = {}
        phases = PhaseSchedule.from_config(cfg)
        for split in ("train", "eval"):
            factors = load_split(dataset, split)
            if not factors:
                continue
            noise = seeded_noise(backbone.latent_shape, [cfg["seed"] + i for i in range(len(factors))])
            latents = euler_sample(expert.velocity_fn(backbone), noise, backbone.encode_prompts(
                [f.caption for f in factors]), phases.sigmas, list(range(phases.num_steps, -1, -1)),
                progress=True)
            videos = backbone.decode(latents)
            report[split] = prompt_following(videos, factors)
            save_gif(videos, work / f"samples_{split}.gif")
            save_filmstrip(videos, work / f"filmstrip_{split}.png")
        write_json(work / "prompt_following.json", report)


def record_pretrained(cfg: dict) -> None:
    """Load the pipeline at backbone.pretrained, check one teacher velocity at sigma = 1 is finite, and write
    network/pretrained.json (path + config hash) for load_teacher, plus probe.json."""
    backbone = pretrained_adapter(cfg["backbone"]["name"])(cfg["backbone"])
    with stage_output(layout.run_dir(cfg) / "teacher", cfg) as work:
        pointer = write_pointer(work / layout.NETWORK, cfg["backbone"]["pretrained"])
        net = backbone.load_network(work / layout.NETWORK).eval().requires_grad_(False)
        start = time.perf_counter()
        with torch.no_grad():
            velocity = backbone.predict(net, seeded_noise(backbone.latent_shape, [cfg["seed"]]), torch.ones(1),
                                        backbone.encode_prompts([PROBE_PROMPT]))
        if not torch.isfinite(velocity).all():
            raise DCMError(f"backbone.pretrained={cfg['backbone']['pretrained']!r}: the teacher's velocity at "
                           "sigma = 1 is not finite (check backbone.dtype and the weights)")
        write_json(work / "probe.json", {
            **pointer, "pointer_file": f"network/{POINTER_FILE}", "prompt": PROBE_PROMPT,
            "latent_shape": list(backbone.latent_shape), "velocity_rms": velocity.float().pow(2).mean().sqrt().item(),
            "parameters": sum(p.numel() for p in net.parameters()), "seconds": time.perf_counter() - start})
