"""Videos in and out: uint8 frame conversion, animated GIF grids and filmstrips, training videos read to size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from dcm.errors import DCMError
from dcm.io import atomic_path


def to_uint8_video(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, T, H, W) in [-1, 1] (clips, VAE output) -> uint8 video (B, T, H, W, 3)."""
    return ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)


def from_uint8_video(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> VAE input (B, 3, T, H, W) in [-1, 1]."""
    return videos.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def grid_frames(videos: torch.Tensor, columns: int, scale: int = 4, pad: int = 1) -> list[Image.Image]:
    """Tile uint8 videos (B, T, H, W, 3) into one frame list, each tile upscaled by `scale`."""
    b, t, h, w, _ = videos.shape
    rows = -(-b // columns)
    canvas = np.full((t, rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k in range(b):
        r, c = divmod(k, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[:, y:y + h, x:x + w] = videos[k].cpu().numpy()
    return [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in canvas]


def save_filmstrip(videos: torch.Tensor, path: str | Path, rows: int = 8, scale: int = 4, pad: int = 1) -> None:
    """PNG with one video per row and its frames left to right, written atomically."""
    videos = videos[:rows]
    b, t, h, w, _ = videos.shape
    canvas = np.full((b * (h + pad) + pad, t * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k in range(b):
        for f in range(t):
            y, x = pad + k * (h + pad), pad + f * (w + pad)
            canvas[y:y + h, x:x + w] = videos[k, f].cpu().numpy()
    image = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def save_gif(videos: torch.Tensor, path: str | Path, columns: int = 8, scale: int = 4, fps: int = 4) -> None:
    """Animated GIF of a grid of videos, written atomically."""
    frames = grid_frames(videos, columns, scale)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CONTAINER_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")


def require_pyav(path: Path) -> None:
    """DCMError naming `path` and the fix when it is a container video (.mp4, ...) and PyAV is not installed."""
    if path.suffix.lower() not in CONTAINER_SUFFIXES:
        return
    try:
        import av  # noqa: F401  PyAV: only the folders holding video files need it
    except ImportError as err:
        raise DCMError(f"{path}: reading {path.suffix} videos needs PyAV (pip install av), or give frame "
                       "folders or GIFs") from err


def _decoded_frames(path: Path) -> list[Image.Image]:
    """Every frame of a video file (PyAV), an animated GIF, or a folder of images in name order."""
    if path.is_dir():
        return [Image.open(p) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if path.suffix.lower() == ".gif":
        with Image.open(path) as gif:
            return [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
    if path.suffix.lower() in CONTAINER_SUFFIXES:
        require_pyav(path)
        import av

        with av.open(str(path)) as container:
            return [frame.to_image() for frame in container.decode(video=0)]
    raise DCMError(f"{path} is not a video: expected a folder of frames, .gif or one of {CONTAINER_SUFFIXES}")


def read_video(path: str | Path, frames: int, height: int, width: int) -> torch.Tensor:
    """The first `frames` frames of a video, scaled to cover height x width and centre-cropped: uint8 (T, H, W, 3)."""
    path = Path(path)
    decoded = _decoded_frames(path)
    if len(decoded) < frames:
        raise DCMError(f"{path} has {len(decoded)} frames, fewer than backbone.frames={frames}")
    out = []
    for frame in decoded[:frames]:
        frame = frame.convert("RGB")
        scale = max(width / frame.width, height / frame.height)
        size = (max(width, round(frame.width * scale)), max(height, round(frame.height * scale)))
        frame = frame.resize(size, Image.BICUBIC)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        out.append(np.asarray(frame.crop((left, top, left + width, top + height))))
    return torch.from_numpy(np.stack(out))
