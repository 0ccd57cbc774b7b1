"""What a provider receives as the reference (or mask) of an image-to-image call: the stored PNG itself
when it is what the store wrote, a cleaned copy when the file was changed behind the server's back."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from context_server.adapters.files import ImageFiles, stored_png
from context_server.errors import InvalidInput


def picture(mode: str = "RGB") -> Image.Image:
    img = Image.new(mode, (96, 64))
    img.putdata([(x % 256, (x * 7) % 256, (x * 13) % 256, 255)[: len(mode)] for x in range(96 * 64)])
    return img


def test_a_png_the_store_wrote_is_passed_on_as_it_is(tmp_path: Path) -> None:
    for mode in ("RGB", "RGBA"):
        saved = ImageFiles(tmp_path).save("u", f"img-{mode}", picture(mode), "png")
        data = saved.path.read_bytes()
        assert stored_png(data, what="reference image") is data


def test_a_file_changed_behind_the_servers_back_is_cleaned(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "from somewhere else")
    buf = io.BytesIO()
    picture().save(buf, "PNG", pnginfo=info)
    cleaned = stored_png(buf.getvalue(), what="reference image")
    out = Image.open(io.BytesIO(cleaned))
    assert out.format == "PNG" and out.info == {} and out.tobytes() == picture().tobytes()

    jpeg = io.BytesIO()
    picture().save(jpeg, "JPEG")
    out = Image.open(io.BytesIO(stored_png(jpeg.getvalue(), what="reference image")))
    assert out.format == "PNG" and out.size == (96, 64)

    palette = io.BytesIO()
    picture().convert("P").save(palette, "PNG")
    cleaned = stored_png(palette.getvalue(), what="reference image")
    assert cleaned != palette.getvalue() and Image.open(io.BytesIO(cleaned)).mode in ("RGB", "RGBA")


def test_a_damaged_file_is_refused_with_what_it_was(tmp_path: Path) -> None:
    data = ImageFiles(tmp_path).save("u", "img", picture(), "png").path.read_bytes()
    with pytest.raises(InvalidInput, match="reference image"):
        stored_png(b"not an image at all", what="reference image")
    with pytest.raises(InvalidInput, match="mask image"):
        stored_png(data[:40], what="mask image")  # cut before the pixel data begins
