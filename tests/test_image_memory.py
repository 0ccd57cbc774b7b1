"""Full-size pixel work takes turns (the §8 memory ceiling), and re-encoding still strips metadata."""

from __future__ import annotations

import io
import threading

from PIL import Image, PngImagePlugin

from context_server.adapters.files import full_size_image, reencode_png


def _png(side: int, **info: object) -> bytes:
    buf = io.BytesIO()
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "secret location")
    Image.new("RGB", (side, side), (200, 30, 40)).save(buf, "PNG", pnginfo=text, **info)  # type: ignore[arg-type]
    return buf.getvalue()


def test_a_large_image_waits_for_the_full_size_slot_and_a_small_one_does_not() -> None:
    large, small = _png(1100), _png(256)
    done: dict[str, bytes] = {}

    def run(name: str, data: bytes) -> None:
        done[name] = reencode_png(data)

    with full_size_image():
        waiting = threading.Thread(target=run, args=("large", large))
        waiting.start()
        run("small", small)  # takes no slot: finishes while the slot is held
        waiting.join(0.5)
        assert "small" in done and "large" not in done and waiting.is_alive()
    waiting.join(30)
    assert "large" in done


def test_re_encoding_keeps_the_pixels_and_drops_text_exif_and_icc() -> None:
    exif = Image.Exif()
    exif[0x010E] = "secret description"
    data = _png(64, exif=exif.tobytes(), icc_profile=b"\0" * 128)
    with Image.open(io.BytesIO(data)) as before:
        assert before.info.get("Comment") == "secret location" and "icc_profile" in before.info
    clean = reencode_png(data)
    assert b"secret" not in clean
    with Image.open(io.BytesIO(clean)) as after:
        assert after.getpixel((10, 10)) == (200, 30, 40)
        assert "Comment" not in after.info and "icc_profile" not in after.info and "exif" not in after.info
