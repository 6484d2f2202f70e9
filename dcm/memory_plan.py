"""Per-GPU memory plan of every GPU stage of a real-backbone config, before anyone spends GPU hours.

Parameter counts come from the real diffusers/transformers classes built on the meta device from the published
configs in dcm/backbones/real_configs/. The precision plan is fp32 master weights with bf16 autocast: a
trainable parameter costs 4 B (fp32 master) + 4 B (fp32 gradient) + 8 B (AdamW's two fp32 moments), divided
by the GPUs of the job under fsdp2 / deepspeed (ZeRO-3); FSDP2 also holds two gathered units (the block
running and the one prefetched) in bf16 with their fp32 gradients for the reduce-scatter. DDP and `none`
replicate everything, plus autocast's bf16 weight cache and (DDP) the fp32 gradient buckets. Frozen networks
(teacher, a parameter-efficient detail expert's base) cost their weights in backbone.dtype, sharded the same way.

Activations come from a stated measurement (ACTIVATIONS: saved for backward per sample, on the real blocks at
real width, facts.md Sec. 5), scaled linearly by tokens (attention through flash/memory-efficient kernels keeps
them linear), by the micro-batch per rank and divided by distributed.context_parallel. Inference stages hold
at most one block's activations per sample. The discriminator heads' saved tensors are measured here with
autograd's saved-tensor hooks on one head (1x1 convolutions: linear in tokens and width); the heads run on teacher
features gathered over the context-parallel group (their GroupNorm spans all tokens), so their part is not divided
by it, and with gradient checkpointing each head keeps only its input and is recomputed in backward.

Not modelled: VAE decode activations (decode is assumed tiled), the trajectory cache (host memory)."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from dcm.errors import DCMError

GIB = 2**30
REAL_CONFIGS = Path(__file__).parent / "backbones" / "real_configs"
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: bytes per trainable parameter: fp32 master + fp32 gradient + AdamW exp_avg + exp_avg_sq (fp32)
TRAINABLE_BYTES = 4 + 4 + 8
#: FSDP2 keeps this many units gathered at once (the running one and the prefetched next)
GATHERED_UNITS = 2
SHARDED = ("fsdp2", "deepspeed")


@dataclass(frozen=True)
class ActivationReference:
    """Activation memory saved for backward by one sample at one resolution, without and with per-block
    checkpointing, measured on the real diffusers blocks at real width (facts.md Sec. 5)."""

    frames: int
    height: int
    width: int
    full_gib: float
    checkpointed_gib: float


@dataclass(frozen=True)
class BackboneSpec:
    """Where a real backbone's published configs are and what its VAE compresses (its released VAE config)."""

    transformer: str
    text_encoders: tuple[str, ...]
    vae_class: str  # built from the diffusers class defaults, which are the released VAE's config
    temporal_compression: int
    spatial_compression: int
    activations: ActivationReference
    latent_channels: int = 16  # the released VAE's latent channels
    condition_padding: tuple[int, int] = (0, 0)  # (rows, columns) the adapter adds to the text states it caches


SPECS = {
    # HunyuanVideo's cached condition: the Llama states plus a mask column and a row for the CLIP vector
    # (dcm/backbones/hunyuan_video.py, pack_condition)
    "hunyuan_video": BackboneSpec("hunyuan_video.json", ("hunyuan_video_text_encoder.json",
                                                         "hunyuan_video_text_encoder_2.json"),
                                  "AutoencoderKLHunyuanVideo", 4, 8, ActivationReference(129, 720, 1280, 1186, 69),
                                  condition_padding=(1, 1)),
    "wan": BackboneSpec("wan.json", ("wan_text_encoder.json",), "AutoencoderKLWan", 4, 8,
                        ActivationReference(81, 480, 832, 133, 8.1)),
    "cogvideox": BackboneSpec("cogvideox.json", ("cogvideox_text_encoder.json",), "AutoencoderKLCogVideoX", 4, 8,
                              ActivationReference(29, 480, 720, 29.5, 2.4)),
}


def _read(name: str) -> tuple[str, dict]:
    raw = json.loads((REAL_CONFIGS / name).read_text())
    return raw["_class_name"], {k: v for k, v in raw.items() if not k.startswith("_")}


def meta_transformer(backbone: str):
    """The real transformer of `backbone` on the meta device (no memory), from its published config."""
    import diffusers
    import torch

    cls, config = _read(SPECS[backbone].transformer)
    with torch.device("meta"):
        return getattr(diffusers, cls).from_config(config)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class NetworkFacts:
    """What the plan needs to know about one real transformer, read off the meta-device model."""

    parameters: int
    largest_unit: int       # parameters of the largest FSDP unit (a block, or the rest of the network)
    blocks: int             # transformer blocks (all block lists)
    width: int              # hidden size of the blocks
    heads: int              # attention heads (Ulysses gives each rank heads / context_parallel of them)
    feature_levels_per_stride: tuple[int, ...]  # discriminator feature levels at stride 1, 2, ...
    patch: tuple[int, int]  # (temporal, spatial) patch size


@functools.cache
def network_facts(backbone: str) -> NetworkFacts:
    """Counts of the real transformer of `backbone` (module docstring)."""
    from torch import nn

    from dcm.backbones import pretrained_adapter

    adapter = pretrained_adapter(backbone)
    net = meta_transformer(backbone)
    block_lists = [m for m in net.children() if isinstance(m, nn.ModuleList)]
    units = [_count(b) for blocks in block_lists for b in blocks]
    rest = _count(net) - sum(units)
    config = net.config
    patch = config.patch_size
    patch = (patch[0], patch[1]) if isinstance(patch, (list, tuple)) else (config.get("patch_size_t") or 1, patch)
    levels = len(getattr(net, adapter.blocks_attribute))
    return NetworkFacts(_count(net), max(units + [rest]), len(units),
                        config.num_attention_heads * config.attention_head_dim, config.num_attention_heads,
                        tuple(len(range(s - 1, levels, s)) for s in range(1, levels + 1)), patch)


@functools.cache
def copied_parameters(backbone: str, names: tuple[str, ...] | None) -> int:
    """Parameters of the timestep layers a detail expert copies (dcm.experts.copied_layer_names of `names`, the
    config's dete.timestep_layers) in the real transformer of `backbone`."""
    from torch import nn

    from dcm.backbones import pretrained_adapter
    from dcm.experts import _resolve, copied_layer_names

    net, copied = meta_transformer(backbone), 0
    for name in copied_layer_names(pretrained_adapter(backbone), names):
        parent, leaf = _resolve(net, name)
        layer = getattr(parent, leaf)
        copied += layer.numel() if isinstance(layer, nn.Parameter) else _count(layer)
    return copied


@functools.cache
def lora_parameters(backbone: str, rank: int) -> int:
    """Parameters peft adds with LoRA of `rank` on the adapter's attention linears (the detail expert)."""
    import torch
    from peft import LoraConfig

    from dcm.backbones import pretrained_adapter

    net = meta_transformer(backbone)
    with torch.device("meta"):
        net.add_adapter(LoraConfig(r=rank, lora_alpha=rank,
                                   target_modules=list(pretrained_adapter(backbone).attention_linear_names)))
    return sum(p.numel() for name, p in net.named_parameters() if "lora_" in name)


@functools.cache
def encoder_parameters(backbone: str) -> tuple[int, int]:
    """(text encoder parameters, VAE parameters) of `backbone`, built on the meta device."""
    import diffusers
    import torch
    import transformers

    spec = SPECS[backbone]
    text = 0
    with torch.device("meta"):
        for name in spec.text_encoders:
            cls, config = _read(name)
            model = getattr(transformers, cls)
            text += _count(model(model.config_class(**config)))
        vae = _count(getattr(diffusers, spec.vae_class)())
    return text, vae


@functools.cache
def discriminator_bytes_per_token(width: int, compute_dtype: str = "float32") -> tuple[int, float]:
    """(parameters, activation bytes saved for backward per token) of one discriminator head at `width` as the heads
    run (dcm/consistency.py): float32 masters under autocast to `compute_dtype`, on teacher features in that dtype,
    with GroupNorm in float32 as CUDA's autocast runs it (CPU autocast would keep the compute dtype). Measured with
    saved-tensor hooks at two widths and two token counts (the per-token slope leaves the weights and their autocast
    copies out) and extrapolated linearly in width (1x1 convolutions and GroupNorm: linear in tokens and width)."""
    import torch

    from dcm.discriminator import DiscriminatorHead

    dtype = getattr(torch, compute_dtype)

    def saved(dim: int, tokens: int) -> int:
        head = DiscriminatorHead(dim)
        for norm in (m for m in head.modules() if isinstance(m, torch.nn.GroupNorm)):
            norm.register_forward_pre_hook(lambda _m, args: tuple(a.float() for a in args))
        storages: dict[int, int] = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        features = torch.randn(1, tokens, dim, dtype=dtype, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            head(features)
        return sum(storages.values())

    small, large = ((saved(dim, 128) - saved(dim, 64)) / 64 for dim in (32, 64))
    with torch.device("meta"):
        parameters = _count(DiscriminatorHead(width))
    return parameters, small + (large - small) * (width - 32) / 32


def tokens(backbone: str, frames: int, height: int, width: int) -> int:
    """Video tokens of one sample: latent frames x latent height x latent width over the patch sizes."""
    spec, facts = SPECS[backbone], network_facts(backbone)
    latent_frames = (frames - 1) // spec.temporal_compression + 1
    pt, ps = facts.patch
    return (latent_frames // pt) * (height // spec.spatial_compression // ps) * (width // spec.spatial_compression // ps)


def activation_gib(backbone: str, frames: int, height: int, width: int, checkpointed: bool) -> float:
    """Activations saved for backward by one sample at this resolution (ActivationReference, scaled by tokens)."""
    ref = SPECS[backbone].activations
    scale = tokens(backbone, frames, height, width) / tokens(backbone, ref.frames, ref.height, ref.width)
    return (ref.checkpointed_gib if checkpointed else ref.full_gib) * scale


@dataclass(frozen=True)
class Holdings:
    """What one stage keeps on each of its GPUs, in parameters and activation GiB per sample."""

    trainable: int = 0           # parameters trained (fp32 masters + AdamW)
    frozen: int = 0              # parameters of frozen networks, in backbone.dtype
    ema: bool = False            # an fp32 EMA copy of the trained parameters (distill.target=ema, LCM)
    extra_trainable: int = 0     # small replicated trained modules (the discriminator heads)
    activations: tuple[float, float] = (0.0, 0.0)  # per sample: (checkpointed, without checkpointing)
    gathered: tuple[float, float] = (0.0, 0.0)     # the same, held whole on every rank of a context-parallel group
    training: bool = True


def _layout(cfg: dict, rule: str, batch: int, training: bool) -> tuple[dict, list[str]]:
    """GPUs, nodes, strategy, context parallelism and micro-batch per rank of one stage, with the problems."""
    from dcm import launch

    gpus = launch.resource(cfg, rule, "gpu", 0)
    problems = []
    try:
        nodes = launch.nodes(cfg, rule)
    except DCMError as err:  # shown as a problem of this stage
        nodes, problems = 1, [str(err)]
    if gpus < 1:
        problems.append(f"resources.{rule}.gpu={gpus}: this stage needs a GPU")
    cp = cfg["distributed"]["context_parallel"] if training else 1
    strategy = cfg["distributed"]["strategy"] if training else "none"
    if gpus % cp:
        problems.append(f"resources.{rule}.gpu={gpus} is not a multiple of distributed.context_parallel={cp}")
    ranks = max(1, gpus // cp) if training else 1
    if training and batch < ranks:
        problems.append(f"batch_size={batch} is smaller than the {ranks} data-parallel ranks "
                        f"(resources.{rule}.gpu / distributed.context_parallel)")
    return {"gpus": gpus, "nodes": nodes, "strategy": strategy, "context_parallel": cp,
            "micro_batch": math.ceil(batch / ranks)}, problems


def _memory(cfg: dict, layout: dict, held: Holdings) -> dict:
    """GiB per GPU of each kind of memory (module docstring)."""
    facts = network_facts(cfg["backbone"]["name"])
    weight_bytes = DTYPE_BYTES[cfg["backbone"]["dtype"]]
    sharded = layout["strategy"] in SHARDED
    shard = max(1, layout["gpus"]) if sharded else 1
    per_rank = layout["micro_batch"] / layout["context_parallel"]
    t = held.trainable
    memory = {
        "weights": t * 4 / shard + held.extra_trainable * 4,
        "gradients": t * 4 / shard + held.extra_trainable * 4,
        "optimizer": t * 8 / shard + held.extra_trainable * 8,
        "frozen": held.frozen * weight_bytes / shard,
        "ema": t * 4 / shard if held.ema else 0,
        # sharded: gathered bf16 units and their fp32 gradients; replicated: autocast's bf16 weight cache
        # (+ DDP's fp32 gradient buckets)
        "gathered_or_compute_copy": (GATHERED_UNITS * facts.largest_unit * (2 + 4) if sharded
                                     else t * (2 + (4 if layout["strategy"] == "ddp" else 0))),
    }
    memory = {k: v / GIB for k, v in memory.items()}
    memory["activations_checkpointed"] = held.activations[0] * per_rank + held.gathered[0] * layout["micro_batch"]
    memory["activations_full"] = held.activations[1] * per_rank + held.gathered[1] * layout["micro_batch"]
    memory["reserve"] = cfg["cluster"]["reserve_gib"]
    return memory


def _row(cfg: dict, stage: str, rule: str, batch: int, held: Holdings, **extra) -> dict:
    layout, problems = _layout(cfg, rule, batch, held.training)
    b, facts, cp = cfg["backbone"], network_facts(cfg["backbone"]["name"]), layout["context_parallel"]
    count = tokens(b["name"], b["frames"], b["height"], b["width"])
    if count % cp or facts.heads % cp:  # diffusers' Ulysses splits tokens and heads into equal shares
        problems.append(f"distributed.context_parallel={cp} must divide the {count} video tokens and the "
                        f"{facts.heads} attention heads")
    memory = _memory(cfg, layout, held)
    checkpointing = cfg["backbone"]["gradient_checkpointing"] and held.training
    base = sum(v for k, v in memory.items() if not k.startswith("activations_"))
    total = base + memory["activations_checkpointed" if checkpointing else "activations_full"]
    gpu = cfg["cluster"]["gpu_memory_gib"]
    return {"stage": stage, "rule": rule, **extra, **layout, "tokens": count,
            "trainable_parameters": held.trainable + held.extra_trainable, "frozen_parameters": held.frozen,
            "gradient_checkpointing": checkpointing,
            "memory_gib": {k: round(v, 2) for k, v in memory.items()},
            "total_gib": round(total, 2),
            "total_without_checkpointing_gib": round(base + memory["activations_full"], 2),
            "gpu_memory_gib": gpu, "fits": not problems and total <= gpu, "problems": problems}


def _eval_prompt_count(cfg: dict) -> int:
    """Prompts the sample stage puts in one batch: sampling.prompts, else the split of data.prompt_file."""
    from dcm.data.prompts import read_prompt_file

    if cfg["sampling"].get("prompts"):
        return len(cfg["sampling"]["prompts"])
    holdout = cfg["data"]["holdout_prompts"]
    return holdout if cfg["sampling"]["split"] == "eval" else len(read_prompt_file(cfg["data"]["prompt_file"])) - holdout


def plan(cfg: dict) -> list[dict]:
    """One row per GPU stage of `cfg` (teacher, trajectories, seme, dete per kind of variant, vcm, lcm, pcm,
    sample, latency): per-GPU GiB of each kind of memory, the total against cluster.gpu_memory_gib, and whether it fits."""
    b = cfg["backbone"]
    if b["name"] not in SPECS:
        raise DCMError(f"backbone.name={b['name']!r}: the memory plan covers the real backbones "
                       f"({', '.join(SPECS)}); the tiny one runs on CPU")
    facts = network_facts(b["name"])
    train = (activation_gib(b["name"], b["frames"], b["height"], b["width"], True),
             activation_gib(b["name"], b["frames"], b["height"], b["width"], False))
    one_block = train[1] / facts.blocks  # inference: at most one block's activations per sample
    text, vae = encoder_parameters(b["name"])
    n, target_ema = facts.parameters, cfg["distill"]["target"] == "ema"
    infer = Holdings(frozen=n + text + vae, activations=(one_block, one_block), training=False)
    rows = [_row(cfg, "teacher", "teacher", 1, infer),
            _row(cfg, "trajectories", "trajectories", cfg["trajectories"]["batch_size"], infer)]
    decoupled = {k: v for k, v in cfg["variants"].items() if v["decouple"]}
    if decoupled:
        rows.append(_row(cfg, "seme", "seme", cfg["seme"]["batch_size"],
                         Holdings(trainable=n, ema=target_ema, activations=train)))
    kinds: dict[tuple[bool, bool], list[str]] = {}
    for name, flags in decoupled.items():
        kinds.setdefault((flags["parameter_efficient"], flags["gan"]), []).append(name)
    d = cfg["dete"]
    lora = lora_parameters(b["name"], d["lora_rank"])
    copied = copied_parameters(b["name"], tuple(d["timestep_layers"]) if d["timestep_layers"] else None)
    for (efficient, gan), names in sorted(kinds.items()):
        trainable = lora + copied if efficient else n
        activations, gathered, heads = train, (0.0, 0.0), 0
        if gan:
            levels = facts.feature_levels_per_stride[min(d["feature_stride"], len(facts.feature_levels_per_stride)) - 1]
            head_parameters, head_bytes = discriminator_bytes_per_token(facts.width, b.get("compute_dtype") or b["dtype"])
            heads = levels * head_parameters
            per_token = tokens(b["name"], b["frames"], b["height"], b["width"]) / GIB
            features = levels * facts.width * 2 * per_token  # one set of teacher features, gathered for the heads
            # the heads on one feature set: checkpointed, their inputs and one head recomputed; else all saved
            on_set = (features + head_bytes * per_token, levels * head_bytes * per_token)
            # generator step: student and teacher backward (split over the group), the target's no-grad features
            # and the heads on the prediction's; discriminator step: the heads on both sets
            activations = tuple(2 * a for a in train)
            gathered = tuple(max(features + h, 2 * h) for h in on_set)
        frozen = (n if efficient else 0) + (n if gan else 0)
        rows.append(_row(cfg, "dete", "dete", d["batch_size"],
                         Holdings(trainable=trainable, frozen=frozen, ema=target_ema, extra_trainable=heads,
                                  activations=activations, gathered=gathered), variants=names))
    for stage in ("vcm", "lcm", "pcm"):
        rows.append(_row(cfg, stage, "baseline", cfg[stage]["batch_size"],
                         Holdings(trainable=n, ema=target_ema or stage == "lcm", activations=train)))
    batch = min(cfg["sampling"]["batch_size"] or _eval_prompt_count(cfg), _eval_prompt_count(cfg))
    rows.append(_row(cfg, "sample", "sample", batch,
                     Holdings(frozen=2 * n + lora + copied + vae, activations=(one_block, one_block), training=False),
                     note="the teacher, or up to two student networks (OD experts, Fig. 3 mixes) + LoRA; the text "
                          "encoders leave the GPU once the prompts are encoded; sampling.batch_size videos at once "
                          "(null: every prompt)"))
    rows.append(_row(cfg, "latency", "latency", 1,
                     Holdings(frozen=2 * n + lora + copied + vae, activations=(one_block, one_block), training=False),
                     note="every Table 1 sampler in one process, one video at a time; only the sampler being timed "
                          "on the GPU (at most two networks + LoRA), the others in host memory"))
    return rows
