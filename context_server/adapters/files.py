"""Image files on disk: hardened decoding, atomic writes, and the transforms the view resource offers.

Files live in `images/<user>/<id>.<ext>`: written to a temporary file, fsynced, then renamed, so a crash
never leaves a half-written image under a real name. Every image is re-encoded before it is stored
(metadata stripped), and decoding refuses anything but PNG/JPEG/WEBP under 16.8 Mpx.

Full-size pixels are the server's largest memory cost (a 4096x4096 RGBA image is 64 MiB decoded, about
130 MiB while it is re-encoded), so work on them holds one of `MAX_FULL_SIZE_IMAGES` process-wide slots
(`full_size_image()`; images of at most `SMALL_PIXELS` take none): four 4096² images at once queue
instead of adding up. Slots are taken on worker
threads, never on the event loop. The figure is measured by `bench/decode_memory.py`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from context_server.errors import InvalidInput, NotFound

__all__ = [
    "MAX_FULL_SIZE_IMAGES",
    "MAX_PIXELS",
    "ImageFiles",
    "StoredFile",
    "decode_image",
    "encode_image",
    "full_size_image",
    "image_pixels",
    "reencode_png",
    "stored_png",
]

MAX_PIXELS = 16_800_000
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
VIEW_FORMATS = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg", "jpg": "image/jpeg"}
PREVIEW_SIDE = 512
PREVIEW_BYTES = 150_000
MAX_VIEW_SIDE = 4096
#: Full-size images decoded (or drawn) at once in this process; see the module docstring.
MAX_FULL_SIZE_IMAGES = 1
#: Images of at most this many pixels (1024x1024: ~4 MiB decoded) take no slot: they cannot add up to much.
SMALL_PIXELS = 1024 * 1024
# Process-wide on purpose: it bounds this process's memory, which every server in it shares.
_FULL_SIZE_SLOTS = threading.BoundedSemaphore(MAX_FULL_SIZE_IMAGES)


@contextmanager
def full_size_image(pixels: int | None = None) -> Iterator[None]:
    """Hold one full-size slot for the block (blocks while all are taken: call it on a worker thread).
    `pixels`, when known, lets a small image through without one."""
    if pixels is not None and pixels <= SMALL_PIXELS:
        yield
        return
    with _FULL_SIZE_SLOTS:
        yield


def image_pixels(data: bytes) -> int | None:
    """width x height from an image's header (nothing decoded), or None when the header is unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            return int(header.width * header.height)
    except Exception:
        return None


def reencode_png(data: bytes, *, what: str = "image") -> bytes:
    """Untrusted bytes decoded with the limits and re-encoded as a clean PNG, holding a full-size slot."""
    with full_size_image(image_pixels(data)):
        return encode_image(decode_image(data, what=what), "png")


def decode_image(data: bytes, *, what: str = "image") -> Image.Image:
    """Decode untrusted bytes into a loaded RGB/RGBA image, or raise `InvalidInput` saying why."""
    if not data:
        raise InvalidInput(f"the {what} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            if opened.width * opened.height > MAX_PIXELS:
                raise InvalidInput(
                    f"the {what} is {opened.width}x{opened.height}; at most {MAX_PIXELS:,} pixels (16.8 Mpx) are accepted"
                )
            opened.load()
            img: Image.Image = opened
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"the {what} is not a PNG, JPEG or WEBP image") from None
    except Exception as exc:  # decoders raise many types (SyntaxError, ValueError, struct.error, ...)
        raise InvalidInput(f"the {what} could not be decoded ({type(exc).__name__}); send a valid PNG, JPEG or WEBP") from None
    ImageOps.exif_transpose(img, in_place=True)  # in place: a returned copy is another full-size buffer
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    return img


def encode_image(img: Image.Image, fmt: str = "png", quality: int = 90) -> bytes:
    """Encode pixels only: no EXIF, text chunks or ICC profile survive."""
    fmt = fmt.lower()
    if fmt == "jpg":
        fmt = "jpeg"
    # A copy with no `info` carries the pixels only: the EXIF, ICC and text that savers read from `info`
    # are gone. (`frombytes(tobytes())` did the same through a third full-size buffer: +64 MiB at 4096².)
    clean = img.copy()
    clean.info = {}
    if fmt == "jpeg" and clean.mode != "RGB":
        clean = clean.convert("RGB")
    buf = io.BytesIO()
    if fmt == "png":
        clean.save(buf, "PNG", optimize=False, compress_level=6)
    elif fmt == "webp":
        clean.save(buf, "WEBP", quality=quality, method=4)
    elif fmt == "jpeg":
        clean.save(buf, "JPEG", quality=quality, optimize=True)
    else:
        raise InvalidInput(f"format {fmt!r} is not supported; use png, webp or jpeg")
    return buf.getvalue()


def stored_png(data: bytes, *, what: str = "image") -> bytes:
    """An image this store saved, as a clean PNG for a provider. `ImageFiles.save` writes `encode_image`
    output (pixels only), so such bytes pass through after a look at the header (0.03 ms); anything else
    (a file changed behind our back) is decoded with the limits and re-encoded (50 ms for a 512x512
    photo-like PNG). The look does not read the pixel data: a file cut short inside it is passed on, and
    the provider's error reports it. Not for untrusted bytes: Pillow does not report every chunk a PNG may
    carry, so those are always decoded and re-encoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data), formats=("PNG",))
            if (header.mode in ("RGB", "RGBA") and not header.info
                    and header.width * header.height <= MAX_PIXELS):
                return data
    except Exception:  # not a PNG, or a header Pillow refuses: the full path says what is wrong
        pass
    return reencode_png(data, what=what)


@dataclass(frozen=True)
class StoredFile:
    path: Path
    width: int
    height: int
    format: str


_SAFE_USER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def user_dir_name(user_id: str) -> str:
    """A directory name for a user id: the id itself when it is safe, else a hash of it."""
    if _SAFE_USER.match(user_id):
        return user_id
    return "u-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


class ImageFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def user_dir(self, user_id: str) -> Path:
        path = self.root / user_dir_name(user_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save(self, user_id: str, image_id: str, img: Image.Image, fmt: str = "png") -> StoredFile:
        data = encode_image(img, fmt)
        directory = self.user_dir(user_id)
        target = directory / f"{image_id}.{fmt}"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=f".{fmt}")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return StoredFile(path=target, width=img.width, height=img.height, format=fmt)

    def load(self, path: Path) -> Image.Image:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound("the image file is missing from the data directory") from None
        return decode_image(data, what="stored image")

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._preview_path(path).unlink(missing_ok=True)

    def _preview_path(self, path: Path) -> Path:
        return path.parent / ".previews" / f"{path.stem}.jpeg"

    def preview(self, path: Path) -> bytes:
        """A JPEG whose longest side is ≤ 512 px and size ≤ 150 KB, cached next to the image."""
        cached = self._preview_path(path)
        if cached.exists():
            return cached.read_bytes()
        with full_size_image():
            img = self.load(path)
            img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return self._cache_preview(cached, img)

    def save_preview(self, path: Path, img: Image.Image) -> None:
        """Write the preview of a just-saved image from its pixels in memory (no second decode)."""
        small = img if max(img.size) <= PREVIEW_SIDE else ImageOps.contain(img, (PREVIEW_SIDE, PREVIEW_SIDE))
        self._cache_preview(self._preview_path(path), small)

    def _cache_preview(self, cached: Path, img: Image.Image) -> bytes:
        data = b""
        for quality in (85, 75, 60, 45, 30):
            data = encode_image(img, "jpeg", quality=quality)
            if len(data) <= PREVIEW_BYTES:
                break
        cached.parent.mkdir(exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cached)
        return data

    def view(
        self,
        path: Path,
        *,
        format: str | None = None,
        width: int | None = None,
        height: int | None = None,
        quality: int | None = None,
    ) -> tuple[bytes, str]:
        """The bytes for `image://{id}/view`: width or height alone resize proportionally; both centre-crop."""
        fmt = (format or path.suffix.lstrip(".") or "png").lower()
        if fmt not in VIEW_FORMATS:
            raise InvalidInput(f"format {format!r} is not supported; use png, webp or jpeg")
        for name, value in (("width", width), ("height", height)):
            if value is not None and not 1 <= value <= MAX_VIEW_SIDE:
                raise InvalidInput(f"{name} must be between 1 and {MAX_VIEW_SIDE}, got {value}")
        if quality is not None and not 1 <= quality <= 100:
            raise InvalidInput(f"quality must be between 1 and 100, got {quality}")
        if width is None and height is None and format is None and quality is None:
            return path.read_bytes(), VIEW_FORMATS[fmt]
        with full_size_image():
            img = self.load(path)
            if width and height:
                img = ImageOps.fit(img, (width, height), Image.Resampling.LANCZOS)
            elif width:
                img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
            elif height:
                img = img.resize((max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS)
            return encode_image(img, fmt, quality=quality or 90), VIEW_FORMATS[fmt]
