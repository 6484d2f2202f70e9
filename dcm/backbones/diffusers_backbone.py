"""What the real-model adapters share: a diffusers pipeline directory (`backbone.pretrained`) as the source of
the text encoder(s), the VAE and the teacher transformer; VAE decoding to uint8 video; student save/load.

The teacher stage does not copy the pretrained transformer: it writes a small pointer file (the pipeline
path and a hash of its config files) into the teacher's network directory, and `load_network` follows it."""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from pathlib import Path

import torch

from dcm.backbones.base import DTYPES, Backbone, compute_dtype, configure_checkpointing, resolve_device
from dcm.errors import DCMError
from dcm.io import read_json, write_json
from dcm.pipelines import guidance, pipeline
from dcm.video import from_uint8_video, to_uint8_video

POINTER_FILE = "pretrained.json"


def pipeline_fingerprint(pretrained: str | Path) -> str:
    """sha256 over model_index.json and every component's config file: which pretrained pipeline this is."""
    root = Path(pretrained)
    files = [root / "model_index.json", *sorted(root.glob("*/*config.json"))]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def check_pipeline_directory(pretrained: str | Path) -> Path:
    """`pretrained` as a Path, or an error naming backbone.pretrained when it is not a diffusers pipeline."""
    root = Path(pretrained)
    if not (root / "model_index.json").is_file():
        raise DCMError(f"backbone.pretrained={str(pretrained)!r} is not a diffusers pipeline directory "
                       "(no model_index.json): download the model there or edit the path")
    return root


def check_scheduler(pretrained: str | Path, name: str) -> None:
    """DCMError unless the pipeline's scheduler is the class and configuration (shift aside: schedule.shift sets
    it) that the grid of backbone `name` is built from (dcm/pipelines.py)."""
    import diffusers

    spec, path = pipeline(name), Path(pretrained) / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise DCMError(f"backbone.pretrained={str(pretrained)!r} has no {path.name} under scheduler/")
    config = read_json(path)
    if config.get("_class_name") != spec.scheduler:
        raise DCMError(f"{path}: scheduler {config.get('_class_name')}, but backbone.name={name} samples on "
                       f"{spec.scheduler} ({spec.source}); the teacher grid would not be the pipeline's")
    loaded = getattr(diffusers, spec.scheduler).from_config(config).config
    differ = {k: loaded[k] for k, v in spec.scheduler_config.items() if k != spec.shift_key and loaded[k] != v}
    if differ:
        raise DCMError(f"{path}: {differ} differ from {spec.source}'s scheduler ({ {k: spec.scheduler_config[k] for k in differ} }), "
                       "from which the teacher grid is built (dcm/pipelines.py)")


def write_pointer(directory: str | Path, pretrained: str | Path) -> dict:
    """Write the teacher's pointer file naming the pretrained pipeline and its config hash; returns it."""
    root = check_pipeline_directory(pretrained).resolve()
    pointer = {"pretrained": str(root), "fingerprint": pipeline_fingerprint(root)}
    write_json(Path(directory) / POINTER_FILE, pointer)
    return pointer


def read_pointer(directory: str | Path, pretrained: str | Path) -> dict:
    """The pointer file in `directory`, checked against the pipeline `pretrained` the config names now."""
    path = Path(directory) / POINTER_FILE
    if not path.is_file():
        raise DCMError(f"{path} is missing: run the 'teacher' stage for this backbone")
    pointer = read_json(path)
    now = pipeline_fingerprint(check_pipeline_directory(pretrained))
    if now != pointer["fingerprint"]:
        raise DCMError(f"backbone.pretrained={str(pretrained)!r} (config hash {now}) is not the pipeline the teacher "
                       f"stage recorded in {path} ({pointer['pretrained']}, hash {pointer['fingerprint']}): "
                       "rerun the 'teacher' stage")
    return pointer


class DiffusersBackbone(Backbone):
    """Adapter around one diffusers text-to-video pipeline directory; subclasses name the model's classes,
    layers and calling convention."""

    #: the diffusers transformer class of teacher and students
    transformer_class: type
    #: default text length when backbone.max_sequence_length is not set (the pipeline's default)
    default_max_sequence_length: int

    def __init__(self, backbone_cfg: dict):
        self.pretrained = check_pipeline_directory(backbone_cfg["pretrained"])
        check_scheduler(self.pretrained, self.name)
        self.dtype = DTYPES[backbone_cfg.get("dtype", "float32")]  # storage of the loaded (frozen) modules
        self.compute_dtype = compute_dtype(backbone_cfg)
        self.device = resolve_device(backbone_cfg.get("device", "auto"))
        self.max_sequence_length = backbone_cfg.get("max_sequence_length") or self.default_max_sequence_length
        self.gradient_checkpointing = backbone_cfg.get("gradient_checkpointing", False)
        self.frames, self.height, self.width = backbone_cfg["frames"], backbone_cfg["height"], backbone_cfg["width"]
        self.guidance = guidance({**backbone_cfg, "name": self.name})
        try:
            self.load_components()
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            raise DCMError(f"backbone.pretrained={str(self.pretrained)!r}: cannot load the pipeline's "
                           f"encoders or VAE: {err}") from err
        for module in (*self.text_encoders(), self.vae):
            module.to(self.device).eval().requires_grad_(False)

    @abstractmethod
    def load_components(self) -> None:
        """Load the text encoder(s), tokenizer(s) and `self.vae` from `self.pretrained`."""

    @abstractmethod
    def text_encoders(self) -> list[torch.nn.Module]:
        """The loaded text encoder(s)."""

    @property
    def text_device(self) -> torch.device:
        """Where the text encoders are now: `self.device`, or the CPU after `release_text_encoders`."""
        return next(self.text_encoders()[0].parameters()).device

    def release_text_encoders(self):
        if self.guidance["kind"] == "cfg":
            self.negative_condition()
        for encoder in self.text_encoders():
            encoder.to("cpu")

    @property
    @abstractmethod
    def compression(self) -> tuple[int, int, int]:
        """(latent channels, temporal, spatial compression) of the VAE."""

    def latents_to_vae(self, latents: torch.Tensor) -> torch.Tensor:
        """Undo the pipeline's latent normalisation before vae.decode (the VAE's scaling factor by default)."""
        return latents / self.vae.config.scaling_factor

    def vae_to_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the pipeline's latent normalisation to a vae.encode result (the VAE's scaling factor by default)."""
        return z * self.vae.config.scaling_factor

    @property
    def fps(self) -> float:
        """Frame rate of this backbone's videos (its pipeline's export default)."""
        return pipeline(self.name).fps

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        channels, temporal, spatial = self.compression
        for key, size in (("height", self.height), ("width", self.width)):
            if size % spatial:
                raise DCMError(f"backbone.{key}={size} must be a multiple of the VAE's spatial compression {spatial}")
        if (self.frames - 1) % temporal:
            raise DCMError(f"backbone.frames={self.frames}: frames - 1 must be a multiple of the VAE's temporal "
                           f"compression {temporal}")
        return channels, (self.frames - 1) // temporal + 1, self.height // spatial, self.width // spatial

    def tile_decoding(self):
        self.vae.enable_tiling()

    @torch.no_grad()
    def decode(self, latents):
        pixels = self.vae.decode(self.latents_to_vae(latents.to(self.device, self.vae.dtype))).sample
        return to_uint8_video(pixels).cpu()

    @torch.no_grad()
    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, T, H, W) of uint8 videos (B, T, H, W, 3): the VAE posterior mode, normalised."""
        z = self.vae.encode(from_uint8_video(videos).to(self.device, self.vae.dtype)).latent_dist.mode()
        return self.vae_to_latents(z).float().cpu()

    def load_network(self, directory):
        """A student saved with save_network, or (via the teacher's pointer file) the pretrained transformer."""
        directory = Path(directory)
        if (directory / "config.json").is_file():
            source, subfolder = directory, None
        elif (directory / POINTER_FILE).is_file():
            source, subfolder = Path(read_pointer(directory, self.pretrained)["pretrained"]), "transformer"
        else:
            raise DCMError(f"no saved network in {directory} (neither config.json nor {POINTER_FILE})")
        try:
            net = self.transformer_class.from_pretrained(str(source), subfolder=subfolder, dtype=self.dtype)
        except (OSError, ValueError, RuntimeError) as err:
            raise DCMError(f"cannot load {self.transformer_class.__name__} from {source}: {err}") from err
        return configure_checkpointing(net, self.gradient_checkpointing).to(self.device)
