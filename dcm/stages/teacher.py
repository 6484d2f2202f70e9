"""Stage `teacher`: pretrain the tiny video teacher with flow matching, then check that its 50-step samples
follow the prompts (colour, shape, motion direction) on the train and held-out prompts."""

from __future__ import annotations


from dcm.backbones.tiny import TinyBackbone
from dcm.data.procedural import vocabulary
from dcm.data.prompts import load_split
from dcm.errors import DCMError
from dcm.eval.prompt_following import prompt_following
from dcm.experts import Expert
from dcm.io import load_tensors, read_json, write_json
from dcm.pretrain import ClipSampler, FlowMatching
from dcm.sampling import euler_sample, seeded_noise
from dcm.stages.common import grid, require, stage_dir, stage_output
from dcm.training import TrainLoop, adamw
from dcm.video import save_filmstrip, save_gif

MAX_WORDS = 5


def run(cfg: dict) -> None:
    if cfg["backbone"]["name"] != "tiny":
        raise DCMError(f"backbone.name={cfg['backbone']['name']!r} is loaded from backbone.pretrained, "
                       "not trained: the teacher stage only pretrains the tiny backbone")
    dataset = require(stage_dir(cfg, "dataset"), "dataset")
    clips = load_tensors(dataset / "clips.safetensors")["clips"]
    records = read_json(dataset / "prompts.json")["clips"]
    backbone = TinyBackbone.from_config(cfg["backbone"], vocabulary(), MAX_WORDS)
    net = backbone.new_network(cfg["backbone"]["model"])
    expert = Expert(net)
    tcfg = cfg["teacher"]
    with stage_output(stage_dir(cfg, "teacher"), cfg) as work:
        TrainLoop(
            student=expert,
            optimizer=adamw(net.parameters(), tcfg["lr"]),
            objective=FlowMatching(expert.denoiser(backbone), tcfg["logit_normal_mean"], tcfg["logit_normal_std"]),
            sample_batch=ClipSampler(clips, backbone.encode_prompts([r["caption"] for r in records]),
                                     tcfg["batch_size"]),
            out_dir=work, steps=tcfg["steps"], seed=cfg["seed"], checkpoint_every=tcfg["checkpoint_every"],
            grad_clip=cfg["distill"]["grad_clip"], description="teacher",
        ).run()
        net.eval()
        backbone.save_network(net, work / "network")
        report = {}
        sigmas, n = grid(cfg), cfg["schedule"]["num_steps"]
        for split in ("train", "eval"):
            factors = load_split(dataset, split)
            if not factors:
                continue
            noise = seeded_noise(backbone.latent_shape, [cfg["seed"] + i for i in range(len(factors))])
            latents = euler_sample(expert.denoiser(backbone), noise, backbone.encode_prompts(
                [f.caption for f in factors]), sigmas, list(range(n, -1, -1)), progress=True)
            videos = backbone.decode(latents)
            report[split] = prompt_following(videos, factors)
            save_gif(videos, work / f"samples_{split}.gif")
            save_filmstrip(videos, work / f"filmstrip_{split}.png")
        write_json(work / "prompt_following.json", report)
