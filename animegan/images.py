"""Pixel conversions, grids, GIFs and atomic image writes. numpy, OpenCV and Pillow only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from animegan.files import atomic_path


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map generator output in [-1, 1] to uint8 exactly: scale, round to nearest, clip."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [-1, 1], the generator's range."""
    return images.astype(np.float32) / 127.5 - 1.0


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """Rows and columns of a near-square grid for n images (16 -> 4x4, 10 -> 3x4)."""
    cols = cols or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def make_grid(
    images: np.ndarray, cols: int | None = None, border: int = 1, scale: int = 1, fill: int = 255
) -> np.ndarray:
    """Tile uint8 NHWC images into one picture with a thin `border` between cells and around them."""
    n, h, w, c = images.shape
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    rows, cols = grid_shape(n, cols)
    grid = np.full((rows * (h + border) + border, cols * (w + border) + border, c), fill, dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        top, left = border + r * (h + border), border + col * (w + border)
        grid[top : top + h, left : left + w] = image
    return grid


def to_pil(image: np.ndarray) -> Image.Image:
    """HWC uint8 with 1 or 3 channels to an 8-bit grayscale ('L') or 'RGB' image."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image, mode=None)


# Every PNG and GIF we write carries this tag, so that a later write can tell our pictures (safe to
# replace) from a user's file of the same name.
SOFTWARE = "animegan"


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an HWC uint8 image as a PNG, atomically (8-bit grayscale or RGB), tagged as ours."""
    tag = PngImagePlugin.PngInfo()
    tag.add_text("Software", SOFTWARE)
    with atomic_path(path) as tmp:
        to_pil(image).save(tmp, format="PNG", pnginfo=tag)
    return Path(path)


def write_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 100) -> Path:
    """Write HWC uint8 frames as a looping animated GIF, atomically, tagged as ours."""
    pictures = [to_pil(f) for f in frames]
    with atomic_path(path) as tmp:
        pictures[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=duration_ms,
            loop=0,
            comment=SOFTWARE.encode(),
        )
    return Path(path)


def written_by_animegan(path: Path) -> bool:
    """Whether `path` is a PNG or GIF that write_png or write_gif made (a missing or foreign file is not)."""
    try:
        with Image.open(path) as picture:
            return SOFTWARE in (picture.info.get("Software"), picture.info.get("comment", b"").decode(errors="replace"))
    except (OSError, ValueError):
        return False
