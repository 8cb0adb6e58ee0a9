"""Decoding image files safely: any format and mode to 8-bit RGB, with clear errors for bad files."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


class BadImage(ValueError):
    """An image that cannot be used; ``kind`` says why: ``empty``, ``format`` (not an image), ``size`` (more pixels
    than allowed: a decompression bomb is refused from its header, before decoding), ``truncated`` or ``corrupt``."""

    def __init__(self, message: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        self.kind = kind


def check_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    """The format (``"JPEG"``, ``"PNG"`` ...) of an image's bytes, after the checks that need no decoding: not empty,
    a known image format, at most ``max_pixels`` (read from the header), a JPEG's end-of-image marker. Raises
    ``BadImage`` naming what is wrong."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadImage("empty file", "empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = im.format
    except (UnidentifiedImageError, OSError) as err:
        raise BadImage(f"not an image ({err.__class__.__name__})", "format") from None
    except Image.DecompressionBombError as err:
        raise BadImage(f"too many pixels to decode safely ({str(err).split(',')[0]})", "size") from None
    if width * height > max_pixels:
        raise BadImage(f"{width}x{height} pixels is more than the {max_pixels:,} allowed", "size")
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise BadImage("truncated JPEG (no end-of-image marker)", "truncated")
    return fmt


def read_checked(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """An image file's bytes and format, checked as :func:`check_bytes` does."""
    data = Path(path).read_bytes()
    return data, check_bytes(data, max_pixels)


def decode_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode any image file to a uint8 RGB tensor 3 x H x W with torchvision (Pillow for formats it lacks).

    Grayscale, palette, RGBA, CMYK and 16-bit images all become 8-bit RGB. Raises ``BadImage`` for empty,
    truncated, corrupt or oversized files; the size is read from the header before anything is decoded.
    """
    data, _ = read_checked(path, max_pixels)
    return decode_bytes(data)


def decode_bytes(data: bytes) -> torch.Tensor:
    """Checked image bytes (see :func:`read_checked`) to uint8 RGB 3 x H x W, on the CPU, the right way up (a
    photo's EXIF orientation applied, as a phone shows it). An animated or multi-page image (GIF, PNG, WebP, TIFF)
    gives its first frame, as a browser shows it before it moves."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    try:
        with quiet_decoder_warnings():
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            img = tv_decode(raw, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (RuntimeError, Warning, ValueError):  # formats torchvision lacks: TIFF, BMP, animated WebP ...
        img = _decode_with_pillow(io.BytesIO(data))
    if img.dim() == 4:  # the frames of an animated GIF
        img = img[0]
    return to_uint8(img)


def decode_on(data: bytes, fmt: str, device: torch.device) -> torch.Tensor:
    """Checked image bytes to uint8 RGB on ``device``: JPEGs decoded there (nvJPEG on a GPU), others on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if fmt != "JPEG":
        return decode_bytes(data).to(device)
    try:
        with quiet_decoder_warnings():
            return decode_jpeg(
                torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, device=device
            )
    except (RuntimeError, Warning, ValueError) as err:
        raise BadImage(f"corrupt JPEG ({str(err).splitlines()[0][:80]})") from None


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    if img.dtype == torch.uint16:
        return (img.to(torch.int32) >> 8).to(torch.uint8)
    return img if img.dtype == torch.uint8 else img.to(torch.uint8)


@contextlib.contextmanager
def quiet_decoder_warnings() -> Iterator[None]:
    """libjpeg's "premature end" and similar become errors, but not torchvision 0.29's notice that its decoders
    will move to TorchCodec: they still work."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _decode_with_pillow(path: Path | io.BytesIO) -> torch.Tensor:
    from PIL import Image, ImageOps
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        with Image.open(path) as im:
            im.seek(0)  # the first frame or page
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = im.point(lambda v: v / 256).convert("L")
            elif im.mode == "F":
                im = im.point(lambda v: v * 255).convert("L")
            return pil_to_tensor(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImage(f"corrupt ({err})") from None


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``... x 3 x H x W`` as one gray channel. A gray image decoded to RGB (three equal channels) gets its
    own values back exactly; the luminance weights sum to 0.9999 and would lose one level on some pixels, by CPU."""
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    first = images[..., :1, :, :]
    if torch.equal(images, first.expand_as(images)):
        return first.clone()
    return rgb_to_grayscale(images)


def read_image(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """An image file as uint8 C x H x W with ``channels`` (1: gray, 3: RGB); ``ValueError`` naming the file and what
    is wrong with it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such image: {path}")
    try:
        img = decode_image(path)
    except (BadImage, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return to_gray(img) if channels == 1 else img
