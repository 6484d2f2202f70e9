"""Stage `dataset`: procedural training clips and the train/eval prompt split (tiny backbone), or the
train/eval split of `data.prompt_file` (real backbones, which distill from prompts alone)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from dcm.data.procedural import make_clips, split_factors
from dcm.data.prompts import PROMPTS_FILE, read_prompt_file, split_prompts
from dcm.io import save_tensors, write_json
from dcm import layout
from dcm.backbone_specs import backbone_spec
from dcm.outputs import stage_output
from dcm.video import save_gif, to_uint8_video


def run(cfg: dict) -> None:
    if backbone_spec(cfg).prompts == "prompt_file":
        prompt_split(cfg)
        return
    data, shape = cfg["data"], cfg["backbone"]
    train, held_out = split_factors(data["holdout_prompts"], cfg["seed"])
    clips, records = make_clips(train, data["clips_per_prompt"], cfg["seed"], shape["frames"], shape["height"],
                                shape["width"], data["object_size"], data["speed"])
    with stage_output(layout.run_dir(cfg) / "dataset", cfg) as work:
        save_tensors(work / "clips.safetensors", {"clips": torch.from_numpy(clips).half()})
        write_json(work / PROMPTS_FILE, {"train": [asdict(f) for f in train],
                                         "eval": [asdict(f) for f in held_out], "clips": records})
        preview = torch.from_numpy(clips[:: data["clips_per_prompt"]][:16])
        save_gif(to_uint8_video(preview), work / "preview.gif")


def prompt_split(cfg: dict) -> None:
    """prompts.json with the 'train' and 'eval' prompt texts of data.prompt_file."""
    source = cfg["data"]["prompt_file"]
    train, held_out = split_prompts(read_prompt_file(source), cfg["data"]["holdout_prompts"], cfg["seed"])
    with stage_output(layout.run_dir(cfg) / "dataset", cfg) as work:
        write_json(work / PROMPTS_FILE, {"train": train, "eval": held_out, "source": source})
