"""The memory plan (`python -m dcm plan`): parameter counts of the real configs on the meta device, the token and
activation scaling, the per-GPU arithmetic of sharding and context parallelism by hand, and the three
real-backbone configs fitting the GPUs they ask for."""

import json
import subprocess
import sys

import pytest

from dcm.config import load_config
from dcm.errors import DCMError
from dcm.memory_plan import (GIB, SPECS, activation_gib, discriminator_bytes_per_token, lora_parameters,
                             network_facts, plan, tokens)
from dcm.teacher_cost import teacher_cost
from tests.helpers import REPO

CONFIGS = {"hunyuan_video": "hunyuanvideo.yaml", "cogvideox": "cogvideox-2b.yaml", "wan": "wan2.1-t2v-1.3b.yaml"}


@pytest.mark.parametrize("backbone,billions,lora_millions", [("hunyuan_video", 12.82, 164), ("cogvideox", 1.69, 59),
                                                              ("wan", 1.42, 94)])
def test_parameter_counts_of_the_real_configs(backbone, billions, lora_millions):
    """facts.md Sec. 5: 12.82 B / 1.69 B / 1.42 B parameters, LoRA r=128 on attention adds 164 M / 59 M / 94 M."""
    assert round(network_facts(backbone).parameters / 1e9, 2) == billions
    assert round(lora_parameters(backbone, 128) / 1e6) == lora_millions


def test_tokens_and_activation_scaling():
    assert tokens("hunyuan_video", 129, 720, 1280) == 33 * 45 * 80  # ~119k (facts.md Sec. 5)
    assert tokens("wan", 81, 480, 832) == 21 * 30 * 52
    assert tokens("cogvideox", 29, 480, 720) == 8 * 30 * 45
    ref = SPECS["wan"].activations
    assert activation_gib("wan", 81, 480, 832, checkpointed=False) == ref.full_gib
    # 41 frames -> 11 latent frames of 21: linear in tokens
    assert activation_gib("wan", 41, 480, 832, checkpointed=True) == pytest.approx(ref.checkpointed_gib * 11 / 21)


def test_discriminator_head_saved_tensors_per_token_in_float32_and_under_bfloat16_autocast():
    """Conv in, GroupNorm in, LeakyReLU, residual conv in, GroupNorm in, LeakyReLU, logits conv in: 7 x 4 B x width
    per token in float32; under bfloat16 autocast the three conv inputs are bfloat16 and GroupNorm (float32 on
    CUDA) with its LeakyReLU float32: (3 x 2 + 4 x 4) B x width."""
    parameters, fp32 = discriminator_bytes_per_token(1536)
    assert fp32 == 28 * 1536 and discriminator_bytes_per_token(1536, "bfloat16") == (parameters, 22 * 1536)
    assert parameters == 2 * (1536 * 1536 + 1536 + 2 * 1536) + 1536 + 1


def _row(rows, stage, variant=None):
    return next(r for r in rows if r["stage"] == stage and (variant is None or variant in r.get("variants", [])))


def test_sharding_and_context_parallelism_by_hand(tmp_path):
    base = load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml")
    n = network_facts("wan").parameters
    one = _row(plan(base), "seme")
    assert one["memory_gib"]["weights"] == round(n * 4 / GIB, 2)     # fp32 masters
    assert one["memory_gib"]["optimizer"] == round(n * 8 / GIB, 2)   # AdamW's two fp32 moments
    assert one["memory_gib"]["activations_checkpointed"] == 8.1      # Wan at 81 x 480 x 832, one sample
    eight = _row(plan(load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml",
                                  ["resources.seme.gpu=8", "seme.batch_size=16", "distributed.context_parallel=2"])),
                 "seme")
    assert eight["memory_gib"]["gradients"] == round(n * 4 / 8 / GIB, 2)
    assert eight["micro_batch"] == 4                                 # 16 over 8 / 2 data-parallel ranks
    assert eight["memory_gib"]["activations_checkpointed"] == pytest.approx(8.1 * 4 / 2, abs=0.01)
    ddp = _row(plan(load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml",
                                ["resources.seme.gpu=8", "seme.batch_size=8", "distributed.strategy=ddp"])), "seme")
    assert ddp["memory_gib"]["weights"] == one["memory_gib"]["weights"]  # replicated
    odd = _row(plan(load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml",
                                ["resources.seme.gpu=8", "distributed.context_parallel=8"])), "seme")
    assert not odd["fits"] and "must divide the 32760 video tokens and the 12 attention heads" in odd["problems"][0]
    small = _row(plan(load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", ["resources.seme.gpu=8"])), "seme")
    assert not small["fits"] and "batch_size=1 is smaller than the 8 data-parallel ranks" in small["problems"][0]


def test_without_checkpointing_hunyuan_training_does_not_fit():
    rows = plan(load_config(REPO / "config" / "hunyuanvideo.yaml", ["backbone.gradient_checkpointing=false"]))
    assert not _row(rows, "seme")["fits"] and _row(rows, "seme")["total_gib"] > 80


@pytest.mark.parametrize("backbone", sorted(CONFIGS))
def test_real_configs_fit_the_gpus_they_ask_for(backbone):
    rows = plan(load_config(REPO / "config" / CONFIGS[backbone]))
    assert {r["stage"] for r in rows} == {"teacher", "trajectories", "seme", "dete", "vcm", "lcm", "pcm", "sample",
                                         "latency"}
    assert [r["stage"] for r in rows if not r["fits"]] == []
    if backbone == "hunyuan_video":  # two 13B students, one video at a time, the text encoders off the GPU
        assert 70 < _row(rows, "sample")["total_gib"] < 72
        assert _row(rows, "latency")["total_gib"] == _row(rows, "sample")["total_gib"]  # one sampler on the GPU
    if backbone == "hunyuan_video":
        seme = _row(rows, "seme")
        assert (seme["gpus"], seme["nodes"], seme["context_parallel"], seme["micro_batch"]) == (24, 3, 4, 1)


@pytest.mark.parametrize("backbone,state,condition,per_velocity", [
    ("hunyuan_video", 16 * 33 * 90 * 160, 257 * 4097, 1),  # 129 x 720 x 1280; Llama states + mask + CLIP row
    ("wan", 16 * 21 * 60 * 104, 512 * 4096, 2),             # 81 x 480 x 832; classifier-free guidance
    ("cogvideox", 16 * 8 * 60 * 90, 226 * 4096, 2)])       # 29 x 480 x 720
def test_teacher_pairs_cached_and_online_by_hand(backbone, state, condition, per_velocity):
    """fp16 bytes of 51 states (cached) or one (online) plus the prompt embedding, for the config's 20 training
    prompts; teacher forwards: the 50-step ODE once per video, or one guided step per training sample."""
    cfg = load_config(REPO / "config" / CONFIGS[backbone])
    cost = teacher_cost(cfg)
    assert cost["videos"] == 20  # 24 prompts, 4 held out, one seed each
    assert cost["cached"]["bytes_per_video"] == 2 * (51 * state + condition)
    assert cost["online"]["bytes_per_video"] == 2 * (state + condition)
    assert cost["cached"]["bytes_total"] == 20 * cost["cached"]["bytes_per_video"]
    assert (cost["cached"]["teacher_forwards"], cost["online"]["teacher_forwards"]) == (50 * per_velocity, per_velocity)
    samples = cfg["seme"]["steps"] * cfg["seme"]["batch_size"] + cfg["dete"]["steps"] * cfg["dete"]["batch_size"]
    assert cost["online"]["run_teacher_forwards"] == samples * per_velocity
    assert (cost["cached"]["teacher_minutes"] is None) == (backbone != "hunyuan_video")


def test_cli_json_and_refusal_of_the_tiny_backbone(tmp_path):
    command = [sys.executable, "-m", "dcm", "plan", "--config", str(REPO / "config" / "cogvideox-2b.yaml"), "--json",
               "--set", f"results_dir={tmp_path}", "--set", "tracking.enabled=false"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    rows = out["stages"]
    assert out["teacher_pairs"]["cached"]["bytes_per_video"] == 51 * 16 * 8 * 60 * 90 * 2 + 226 * 4096 * 2
    assert all({"stage", "gpus", "strategy", "total_gib", "gpu_memory_gib", "fits"} <= set(r) for r in rows)
    assert _row(rows, "seme")["strategy"] == "fsdp2" and _row(rows, "seme")["gpus"] == 4
    with pytest.raises(DCMError, match="backbone.name='tiny'"):
        plan(load_config(REPO / "config" / "smoke.yaml"))
