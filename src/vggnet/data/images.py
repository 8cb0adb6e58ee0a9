"""Decoding image files safely: any format and mode to 8-bit RGB, with clear errors for bad files."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit
# The most bytes an image within a pixel limit can need: each pixel uncompressed at 16 bits in four channels (a raw
# TIFF, BMP or PAM; compressed formats need less), and room for headers and metadata (ICC profiles, EXIF, XMP).
BYTES_PER_PIXEL = 8
HEADER_BYTES = 16 * 2**20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}


class BadImage(ValueError):
    """An image that cannot be used; ``kind`` says why: ``empty``, ``format`` (not an image), ``size`` (more pixels
    than allowed: a decompression bomb is refused from its header, before decoding), ``truncated``, ``corrupt`` or
    ``not a file`` (a FIFO, a device, a folder: never opened)."""

    def __init__(self, message: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        self.kind = kind


def max_image_bytes(max_pixels: int = MAX_PIXELS) -> int:
    """The most bytes a file of an image of at most ``max_pixels`` pixels can need (about 716 MB at the default
    limit): what every reader of image files reads at most."""
    return max_pixels * BYTES_PER_PIXEL + HEADER_BYTES


def check_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    """The format (``"JPEG"``, ``"PNG"`` ...) of an image's bytes, after the checks that need no decoding: not empty,
    a known image format, at most ``max_pixels`` (read from the header), a JPEG's end-of-image marker. Raises
    ``BadImage`` naming what is wrong."""
    if not data:
        raise BadImage("empty file", "empty")
    fmt = _header(io.BytesIO(data), max_pixels)
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise BadImage("truncated JPEG (no end-of-image marker)", "truncated")
    return fmt


def _header(stream: Any, max_pixels: int) -> str:
    """The format an image's header names, from the header alone (Pillow reads no further); ``BadImage`` where it
    names none, or more than ``max_pixels`` pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(stream) as im:
            width, height = im.size
            fmt = im.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImage(f"not an image ({err.__class__.__name__})", "format") from None
    except Image.DecompressionBombError as err:
        raise BadImage(f"too many pixels to decode safely ({str(err).split(',')[0]})", "size") from None
    if width * height > max_pixels:
        raise BadImage(f"{width}x{height} pixels is more than the {max_pixels:,} allowed", "size")
    return fmt


def read_image_bytes(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> bytes:
    """An image file's bytes, read within bounds, by local path or any URI pyarrow's filesystems read (s3://, gs://,
    hdfs://, file://): only a regular file (a FIFO, a device or a folder is refused from its ``stat``, before it is
    opened, so nothing blocks or streams without end), only once its header names an image of at most
    ``max_pixels`` pixels (a large file that is not an image is not read), and at most :func:`max_image_bytes`.
    ``BadImage`` or ``OSError`` naming what is wrong. Every reader of image files reads through this."""
    path = os.fspath(path)
    if "://" not in path:
        return _read_local(path, max_pixels)
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    if isinstance(filesystem, fs.LocalFileSystem):
        return _read_local(inner, max_pixels)
    info = filesystem.get_file_info(inner)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(errno.ENOENT, "No such file", path)
    if info.type != fs.FileType.File:
        raise BadImage(f"not a regular file ({info.type.name.lower()})", "not a file")
    with filesystem.open_input_file(inner) as stream:
        return _bounded(stream, info.size, max_pixels)


def _read_local(path: str, max_pixels: int) -> bytes:
    _regular(os.stat(path).st_mode)
    # O_NONBLOCK: a file swapped for a FIFO between the stat and the open does not block the open
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as stream:
        found = os.fstat(fd)
        _regular(found.st_mode)
        return _bounded(stream, found.st_size, max_pixels)


SPECIAL_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in SPECIAL_FILES if test(mode)), "not a file")
        raise BadImage(f"not a regular file ({kind})", "not a file")


def _bounded(stream: Any, size: int, max_pixels: int) -> bytes:
    """The stream's bytes, once its header is an image's and its size within what such an image can need."""
    if size == 0:
        raise BadImage("empty file", "empty")
    _header(stream, max_pixels)
    limit = max_image_bytes(max_pixels)
    too_big = f"{size:,} bytes is more than an image of at most {max_pixels:,} pixels can need ({limit:,})"
    if size > limit:
        raise BadImage(too_big, "size")
    stream.seek(0)
    data = stream.read(limit + 1)
    if len(data) > limit:  # it grew while read
        raise BadImage(too_big, "size")
    return data


def read_checked(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """An image file's bytes (read within bounds, see :func:`read_image_bytes`) and format, checked as
    :func:`check_bytes` does."""
    data = read_image_bytes(path, max_pixels)
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
    if not path.exists() or path.is_dir():  # a FIFO or a device goes on, to be refused by name
        raise ValueError(f"no such image: {path}")
    try:
        img = decode_image(path)
    except (BadImage, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return to_gray(img) if channels == 1 else img
