"""HunyuanVideo (HunyuanVideoTransformer3DModel, AutoencoderKLHunyuanVideo, Llama + CLIP text encoders): flow
matching, velocity v = noise - x0 at timestep 1000 sigma, with the embedded guidance input 1000 g (the
pipeline's `guidance` tensor, backbone.guidance.scale; the pipeline's default and the authors' g = 6, facts.md Sec. 1).

Its conditioning is three tensors; the trajectory cache stores one, so they are packed into one (B, L+1, D+1)
tensor: rows 0..L-1 hold the Llama states with the attention mask as the last column, row L the CLIP pooled
embedding."""

from __future__ import annotations

import functools
import math

import torch
from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

from dcm.backbones.diffusers_backbone import DiffusersBackbone
from dcm.errors import DCMError


def pack_condition(embeds: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """(B, L, D) states, (B, L) mask, (B, P) pooled with P <= D -> one (B, L+1, D+1) tensor."""
    b, length, width = embeds.shape
    if pooled.shape[-1] > width:
        raise DCMError(f"pooled text embedding width {pooled.shape[-1]} exceeds the token width {width}")
    packed = embeds.new_zeros(b, length + 1, width + 1)
    packed[:, :length, :width] = embeds
    packed[:, :length, width] = mask.to(embeds.dtype)
    packed[:, length, :pooled.shape[-1]] = pooled
    return packed


def unpack_condition(packed: torch.Tensor, pooled_width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of pack_condition: (states, mask as int64, pooled)."""
    return packed[:, :-1, :-1], packed[:, :-1, -1].round().long(), packed[:, -1, :pooled_width]


def weight_text_keys(block, args: tuple, degree: int) -> tuple:
    """Forward pre-hook of a HunyuanVideo block under context parallelism: its boolean joint-attention mask
    (B, 1, 1, local video + text tokens) as an additive one that weights each text key by 1 / degree. Each rank
    holds its share of the video tokens and every text token, so after Ulysses' all-to-all each text key is there
    `degree` times; equal copies at 1 / degree each are the key once (padding stays masked)."""
    hidden, encoder, temb, mask, *rest = args
    text = torch.arange(mask.shape[-1], device=mask.device) >= mask.shape[-1] - encoder.shape[1]
    bias = torch.where(mask, torch.where(text, -math.log(degree), 0.0), float("-inf"))
    return (hidden, encoder, temb, bias.to(hidden.dtype), *rest)


class HunyuanVideoBackbone(DiffusersBackbone):
    """Adapter for HunyuanVideo (13B)."""

    name = "hunyuan_video"
    transformer_class = HunyuanVideoTransformer3DModel
    default_max_sequence_length = 256  # HunyuanVideoPipeline.__call__ default
    timestep_layer_names = ("time_text_embed", "norm_out", "proj_out")
    attention_linear_names = ("to_q", "to_k", "to_v", "to_out.0")
    blocks_attribute = "transformer_blocks"
    # diffusers 0.42 has no plan for this class: split the video tokens (patch embedding, rotary tables), keep
    # the text tokens on every rank (weight_text_keys), gather the output
    context_parallel_plan = {
        "x_embedder": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
        "rope": {0: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True),
                 1: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

    def enable_context_parallel(self, module, mesh):
        super().enable_context_parallel(module, mesh)
        hook = functools.partial(weight_text_keys, degree=mesh["ulysses"].size())
        for net in (m for m in module.modules() if isinstance(m, HunyuanVideoTransformer3DModel)):
            for block in (*net.transformer_blocks, *net.single_transformer_blocks):
                block.register_forward_pre_hook(hook)

    def load_components(self):
        self.pipeline = HunyuanVideoPipeline.from_pretrained(str(self.pretrained), transformer=None,
                                                             dtype=self.dtype)
        self.vae = self.pipeline.vae

    def text_encoders(self):
        return [self.pipeline.text_encoder, self.pipeline.text_encoder_2]

    @property
    def compression(self):
        return self.vae.config.latent_channels, self.vae.temporal_compression_ratio, self.vae.spatial_compression_ratio

    @torch.no_grad()
    def encode_prompts(self, prompts):
        embeds, pooled, mask = self.pipeline.encode_prompt(list(prompts), max_sequence_length=self.max_sequence_length,
                                                           device=self.text_device)
        return pack_condition(embeds.float(), mask, pooled.float()).cpu()

    def network_velocity(self, net, x, sigma, cond):
        embeds, mask, pooled = unpack_condition(cond, net.config.pooled_projection_dim)
        b = x.shape[0]
        hidden, timestep, guidance, embeds, pooled, mask = self.net_inputs(
            net, x, self.model_timestep(sigma).expand(b),
            torch.full((b,), self.guidance["scale"] * 1000.0), embeds, pooled, mask)
        out = net(hidden_states=hidden, timestep=timestep, encoder_hidden_states=embeds,
                  encoder_attention_mask=mask, pooled_projections=pooled,
                  guidance=guidance if net.config.guidance_embeds else None, return_dict=False)[0]
        return out.to(x)
