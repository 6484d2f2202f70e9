"""Wan2.1 text-to-video (WanTransformer3DModel, AutoencoderKLWan, UMT5): flow matching with the repo's own
convention, velocity v = noise - x0, at the integer timestep floor(1000 sigma) its pipeline's UniPC scheduler feeds."""

from __future__ import annotations

import torch
from diffusers import WanPipeline, WanTransformer3DModel

from dcm.backbones.diffusers_backbone import DiffusersBackbone


class WanBackbone(DiffusersBackbone):
    """Adapter for Wan2.1-T2V (the paper uses the 1.3B model)."""

    name = "wan"
    transformer_class = WanTransformer3DModel
    default_max_sequence_length = 512  # WanPipeline.__call__ default
    timestep_layer_names = ("condition_embedder", "scale_shift_table", "norm_out", "proj_out")
    attention_linear_names = ("to_q", "to_k", "to_v", "to_out.0")
    blocks_attribute = "blocks"

    def load_components(self):
        self.pipeline = WanPipeline.from_pretrained(str(self.pretrained), transformer=None, dtype=self.dtype)
        self.vae = self.pipeline.vae

    def text_encoders(self):
        return [self.pipeline.text_encoder]

    @property
    def compression(self):
        config = self.vae.config
        return config.z_dim, config.scale_factor_temporal, config.scale_factor_spatial

    def _statistics(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, self.vae.config.z_dim, 1, 1, 1)
        return (torch.tensor(self.vae.config.latents_mean).view(shape).to(z),
                torch.tensor(self.vae.config.latents_std).view(shape).to(z))

    def latents_to_vae(self, latents):
        mean, std = self._statistics(latents)
        return latents * std + mean

    def vae_to_latents(self, z):
        mean, std = self._statistics(z)
        return (z - mean) / std

    def model_timestep(self, sigma):
        """1000 sigma truncated to an integer: the int64 timesteps WanPipeline's UniPC scheduler feeds at its sigmas."""
        return (sigma.double() * 1000).floor().to(sigma.dtype)

    @torch.no_grad()
    def encode_prompts(self, prompts):
        embeds, _ = self.pipeline.encode_prompt(list(prompts), do_classifier_free_guidance=False,
                                                max_sequence_length=self.max_sequence_length, device=self.text_device)
        return embeds.float().cpu()

    def network_velocity(self, net, x, sigma, cond):
        hidden, timestep, text = self.net_inputs(net, x, self.model_timestep(sigma).expand(x.shape[0]), cond)
        out = net(hidden_states=hidden, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]
        return out.to(x)
