"""Stage `dataset`: procedural training clips and the train/eval prompt split."""

from __future__ import annotations

from dataclasses import asdict

import torch

from dcm.data.procedural import make_clips, split_factors
from dcm.io import save_tensors, write_json
from dcm.stages.common import stage_dir, stage_output
from dcm.video import save_gif


def run(cfg: dict) -> None:
    data, shape = cfg["data"], cfg["backbone"]
    train, held_out = split_factors(data["holdout_prompts"], cfg["seed"])
    clips, records = make_clips(train, data["clips_per_prompt"], cfg["seed"], shape["frames"], shape["height"],
                                shape["width"], data["object_size"], data["speed"])
    with stage_output(stage_dir(cfg, "dataset"), cfg) as work:
        save_tensors(work / "clips.safetensors", {"clips": torch.from_numpy(clips).half()})
        write_json(work / "prompts.json", {"train": [asdict(f) for f in train],
                                           "eval": [asdict(f) for f in held_out], "clips": records})
        preview = torch.from_numpy(clips[:: data["clips_per_prompt"]][:16])
        save_gif(((preview + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1), work / "preview.gif")
