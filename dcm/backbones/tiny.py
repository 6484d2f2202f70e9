"""The embedded tiny teacher: a small diffusers WanTransformer3DModel on pixel-space clips, with a
one-hot word encoder over a fixed vocabulary as its text conditioning.

Wan's rotary embeddings are purely relative, so a tiny Wan has no sense of absolute frame or pixel
position, and on CPU budgets its cross-attention alone learned colour but not motion direction (see
README). The adapter therefore also feeds, as extra input channels (the way Wan-I2V concatenates its
image condition), fixed (t, y, x) coordinates and the prompt's bag of words, broadcast over the video.
Cross-attention still reads the word tokens."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from torch import nn

from dcm import distributed
from dcm.backbones.base import Backbone, compute_dtype, configure_checkpointing, resolve_device
from dcm.errors import DCMError
from dcm.io import read_json, write_json
from dcm.video import from_uint8_video, to_uint8_video

VOCABULARY_FILE = "vocabulary.json"
PAD = "<pad>"


class OneHotWordEncoder:
    """Maps a prompt to a (L, V) matrix of one-hot word vectors over a fixed vocabulary, padded to L."""

    def __init__(self, words: list[str], max_words: int):
        self.words = [PAD] + sorted(set(words) - {PAD})
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_words = max_words

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.max_words, len(self.words))
        for row, prompt in enumerate(prompts):
            tokens = prompt.lower().split()
            unknown = [t for t in tokens if t not in self.index]
            if unknown:
                raise DCMError(f"prompt {prompt!r} has words outside the tiny vocabulary: {unknown}; "
                               f"known words: {self.words[1:]}")
            if len(tokens) > self.max_words:
                raise DCMError(f"prompt {prompt!r} has {len(tokens)} words; the tiny encoder takes {self.max_words}")
            tokens += [PAD] * (self.max_words - len(tokens))
            out[row, torch.arange(self.max_words), [self.index[t] for t in tokens]] = 1.0
        return out


class TinyBackbone(Backbone):
    """Adapter for the tiny pixel-space Wan teacher."""

    timestep_layer_names = ("condition_embedder", "scale_shift_table", "norm_out", "proj_out")
    attention_linear_names = ("to_q", "to_k", "to_v", "to_out.0")

    def __init__(self, shape: tuple[int, int, int, int], encoder: OneHotWordEncoder, device: torch.device,
                 gradient_checkpointing: bool = False, dtype: torch.dtype = torch.float32):
        self._shape = shape
        self.encoder = encoder
        self.device = device
        self.gradient_checkpointing = gradient_checkpointing
        self.compute_dtype = dtype

    @classmethod
    def from_config(cls, backbone_cfg: dict, words: list[str], max_words: int) -> "TinyBackbone":
        shape = (3, backbone_cfg["frames"], backbone_cfg["height"], backbone_cfg["width"])
        return cls(shape, OneHotWordEncoder(words, max_words), resolve_device(backbone_cfg.get("device", "auto")),
                   backbone_cfg.get("gradient_checkpointing", False), compute_dtype(backbone_cfg))

    @classmethod
    def from_directory(cls, backbone_cfg: dict, directory: str | Path) -> "TinyBackbone":
        vocab = read_json(Path(directory) / VOCABULARY_FILE)
        return cls.from_config(backbone_cfg, vocab["words"], vocab["max_words"])

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        return self._shape

    def new_network(self, model_cfg: dict) -> nn.Module:
        """A freshly initialised tiny WanTransformer3DModel for this vocabulary and clip shape."""
        kwargs = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, ffn_dim=256,
                      num_layers=4, freq_dim=64, rope_max_seq_len=64)
        kwargs.update(model_cfg)
        kwargs["patch_size"] = tuple(kwargs["patch_size"])
        vocabulary = len(self.encoder.words)
        net = WanTransformer3DModel(in_channels=3 + 3 + vocabulary, out_channels=3, text_dim=vocabulary, **kwargs)
        return configure_checkpointing(net, self.gradient_checkpointing).to(self.device)

    def condition_channels(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, 3 + V, T, H, W): coordinates in [-1, 1] and the bag of words of each prompt."""
        b, _, t, h, w = x.shape
        axes = [torch.linspace(-1, 1, n, dtype=x.dtype, device=x.device) for n in (t, h, w)]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij")).expand(b, 3, t, h, w)
        words = cond.to(x.dtype).sum(1)[:, :, None, None, None].expand(b, cond.shape[-1], t, h, w)
        return torch.cat([coords, words], 1)

    def network_velocity(self, net, x, sigma, cond):
        hidden, timestep, words = self.net_inputs(net, x, (sigma * 1000).expand(x.shape[0]), cond)
        inputs = torch.cat([hidden, self.condition_channels(hidden, words)], 1)
        return net(hidden_states=inputs, timestep=timestep, encoder_hidden_states=words, return_dict=False)[0].to(x)

    def encode_prompts(self, prompts):
        return self.encoder(list(prompts))

    def decode(self, latents):
        return to_uint8_video(latents)

    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        """Pixel space: the clips themselves in [-1, 1], (B, 3, T, H, W)."""
        return from_uint8_video(videos)

    def save_network(self, net, directory):
        super().save_network(net, directory)
        if distributed.is_main():
            write_json(Path(directory) / VOCABULARY_FILE,
                       {"words": self.encoder.words, "max_words": self.encoder.max_words})

    def load_network(self, directory):
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise DCMError(f"no saved network in {directory} (config.json missing)")
        try:
            net = WanTransformer3DModel.from_pretrained(str(directory))
        except (OSError, ValueError, RuntimeError) as err:
            raise DCMError(f"cannot load network from {directory}: {err}") from err
        return configure_checkpointing(net, self.gradient_checkpointing).to(self.device)
