"""CogVideoX (CogVideoXTransformer3DModel, AutoencoderKLCogVideoX, T5): a v-prediction DDPM, driven here
through the flow-matching interface.

Flow state x = (1 - sigma) x0 + sigma eps; DDPM state x_t = a x0 + b eps with a = sqrt(ab_t), b = sqrt(1 - ab_t).
Both lie on the same ray when b / a = sigma / (1 - sigma), so with r = sqrt((1 - sigma)^2 + sigma^2):
x_t = x / r, a = (1 - sigma) / r, b = sigma / r, and t solves ab_t = a^2 (interpolated in log-SNR on the
scheduler's alphas_cumprod). The model predicts v = a eps - b x0 (Salimans & Ho 2022); with a^2 + b^2 = 1,
x0 = a x_t - b v and eps = b x_t + a v, so the flow velocity is eps - x0 = (b - a) x_t + (a + b) v."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
from transformers import AutoTokenizer, T5EncoderModel

from dcm.backbones.diffusers_backbone import DiffusersBackbone
from dcm.errors import DCMError


def ddpm_coefficients(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, r) of the DDPM state x_t = x / r = a x0 + b eps matching flow level sigma (module docstring)."""
    sigma = sigma.double()
    r = ((1 - sigma) ** 2 + sigma**2).sqrt()
    return (1 - sigma) / r, sigma / r, r


def ddpm_timestep(alphas_cumprod: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Fractional DDPM time t with alphas_cumprod[t] = a^2, linear in log-SNR between grid times, clamped."""
    ab = alphas_cumprod.double().clamp(1e-12, 1 - 1e-12)
    grid_snr = (ab / (1 - ab)).log().numpy()[::-1]  # ascending
    target = (a.double() ** 2).clamp(1e-12, 1 - 1e-12)
    times = np.arange(len(ab), dtype=np.float64)[::-1]
    return torch.from_numpy(np.interp((target / (1 - target)).log().numpy(), grid_snr, times))


def flow_velocity(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """eps - x0 = (b - a) x_t + (a + b) v for a v-prediction at x_t = a x0 + b eps (module docstring)."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    a, b = a.to(x_t).view(shape), b.to(x_t).view(shape)
    return (b - a) * x_t + (a + b) * v


class CogVideoXBackbone(DiffusersBackbone):
    """Adapter for CogVideoX (the paper uses the 2B model, which has no rotary embeddings)."""

    name = "cogvideox"
    transformer_class = CogVideoXTransformer3DModel
    default_max_sequence_length = 226  # CogVideoXPipeline default; the transformer's max_text_seq_length
    timestep_layer_names = ("time_embedding", "norm_out", "proj_out")
    attention_linear_names = ("to_q", "to_k", "to_v", "to_out.0")
    blocks_attribute = "transformer_blocks"

    def load_components(self):
        root = str(self.pretrained)
        self.tokenizer = AutoTokenizer.from_pretrained(root, subfolder="tokenizer")
        self.text_encoder = T5EncoderModel.from_pretrained(root, subfolder="text_encoder", dtype=self.dtype)
        self.vae = AutoencoderKLCogVideoX.from_pretrained(root, subfolder="vae", dtype=self.dtype)
        scheduler = CogVideoXDDIMScheduler.from_pretrained(root, subfolder="scheduler")
        if scheduler.config.prediction_type != "v_prediction":
            raise DCMError(f"{root}/scheduler: prediction_type={scheduler.config.prediction_type!r}; the CogVideoX "
                           "adapter converts v-predictions only")
        self.alphas_cumprod = scheduler.alphas_cumprod

    def text_encoders(self):
        return [self.text_encoder]

    def model_timestep(self, sigma):
        """The DDPM time whose alphas_cumprod puts x_t on sigma's ray (module docstring); on the grid (dcm/grids.py)
        these are the DDIM scheduler's trailing timesteps."""
        return ddpm_timestep(self.alphas_cumprod, ddpm_coefficients(sigma.cpu())[0])

    @property
    def compression(self):
        config = self.vae.config
        return config.latent_channels, config.temporal_compression_ratio, 2 ** (len(config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompts(self, prompts):
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_sequence_length,
                                truncation=True, add_special_tokens=True, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.text_device))[0].float().cpu()

    def network_velocity(self, net, x, sigma, cond):
        if net.config.use_rotary_positional_embeddings:
            raise DCMError("this CogVideoX transformer uses rotary embeddings (CogVideoX-5B / 1.5); the adapter "
                           "supports CogVideoX-2B only")
        a, b, r = ddpm_coefficients(sigma.expand(x.shape[0]).cpu())
        x_t = x / r.to(x).view(-1, 1, 1, 1, 1)
        hidden, timestep, text = self.net_inputs(net, x_t.transpose(1, 2), self.model_timestep(sigma.expand(x.shape[0])),
                                                 cond)
        v = net(hidden_states=hidden, encoder_hidden_states=text, timestep=timestep, return_dict=False)[0]
        return flow_velocity(x_t, v.transpose(1, 2).to(x), a, b)
