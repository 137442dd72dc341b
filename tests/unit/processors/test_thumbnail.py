from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import Any

import pytest
from PIL import Image, JpegImagePlugin
from pydantic import ValidationError

from filejob.processors.base import Cancelled, ProcessingError
from filejob.processors.thumbnail import Thumbnail, ThumbnailParams
from tests.support.harness import MakeJob

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB"):
    img = Image.new(mode, size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at `xy`, one value per band."""
    value = img.getpixel(xy)
    assert isinstance(value, tuple), value
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header claiming a huge size, with only a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def open_result(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_jpeg_scaled_into_the_box(make_job: MakeJob) -> None:
    data = encode(halves((2400, 1600), RED, BLUE), "JPEG", quality=90)
    job = make_job(data, filename="holiday.photo.JPG", content_type="image/jpeg")
    out = job.run(Thumbnail())
    assert out.filename == "holiday.photo.thumbnail.jpg"
    assert out.content_type == "image/jpeg"
    thumb = open_result(job.result())
    assert thumb.format == "JPEG"
    assert thumb.size == (256, 171)
    assert close_to(pixel(thumb, (10, 85)), RED)
    assert close_to(pixel(thumb, (245, 85)), BLUE)


def test_jpeg_is_decoded_at_reduced_size(make_job: MakeJob, monkeypatch) -> None:
    calls = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = encode(Image.new("RGB", (3200, 2400), RED), "JPEG")
    make_job(data).run(Thumbnail(), width=200, height=100)
    assert calls[0] == (400, 200)


def test_exif_orientation_is_applied(make_job: MakeJob, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stored landscape, left red / right blue; Orientation=6 means "rotate 90 deg clockwise to
    # display", so the displayed image is portrait with red on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(halves((800, 400), RED, BLUE), "JPEG", exif=exif.tobytes())
    calls: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Any, mode: Any, size: tuple[int, int]) -> Any:
        calls.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)

    job = make_job(data, filename="portrait.jpg")
    job.run(Thumbnail(), width=100, height=100)
    thumb = open_result(job.result())
    assert thumb.size == (50, 100)
    assert close_to(pixel(thumb, (25, 10)), RED)
    assert close_to(pixel(thumb, (25, 90)), BLUE)
    # The draft box is swapped too, since it applies to the stored (unrotated) image.
    assert calls == [(200, 200)]


def test_png_alpha_flattened_onto_white_for_jpeg(make_job: MakeJob) -> None:
    # Transparent pixels store black; a naive RGBA->RGB conversion would show them as black.
    data = encode(halves((400, 400), (0, 0, 0, 0), (*GREEN, 255), mode="RGBA"), "PNG")
    job = make_job(data, filename="logo.png")
    out = job.run(Thumbnail(), width=100, height=100, format="jpeg")
    assert out.filename == "logo.thumbnail.jpg"
    thumb = open_result(job.result())
    assert thumb.mode == "RGB"
    assert thumb.size == (100, 100)
    assert close_to(pixel(thumb, (10, 50)), WHITE)
    assert close_to(pixel(thumb, (90, 50)), GREEN)


def test_png_output_keeps_alpha(make_job: MakeJob) -> None:
    data = encode(halves((400, 200), (0, 0, 0, 0), (*GREEN, 255), mode="RGBA"), "PNG")
    job = make_job(data, filename="logo.png")
    out = job.run(Thumbnail(), width=64, height=64, format="png")
    assert (out.filename, out.content_type) == ("logo.thumbnail.png", "image/png")
    thumb = open_result(job.result())
    assert (thumb.format, thumb.mode, thumb.size) == ("PNG", "RGBA", (64, 32))
    assert pixel(thumb, (5, 16))[3] == 0
    assert pixel(thumb, (60, 16)) == (*GREEN, 255)


def test_webp_output(make_job: MakeJob) -> None:
    job = make_job(encode(Image.new("L", (300, 600), 128), "PNG"), filename="gray.png")
    out = job.run(Thumbnail(), format="webp")
    assert (out.filename, out.content_type) == ("gray.thumbnail.webp", "image/webp")
    thumb = open_result(job.result())
    assert (thumb.format, thumb.size) == ("WEBP", (128, 256))


def test_never_upscales(make_job: MakeJob) -> None:
    job = make_job(encode(Image.new("RGB", (50, 40), RED), "PNG"))
    job.run(Thumbnail(), width=1000, height=1000, format="png")
    assert open_result(job.result()).size == (50, 40)


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("GIF", "P", {"transparency": 0}),
        ("WEBP", "RGB", {}),
        ("BMP", "RGB", {}),
        ("TIFF", "RGB", {"compression": "tiff_lzw"}),
        ("TIFF", "CMYK", {}),
        ("PNG", "I;16", {}),
        ("PNG", "1", {}),
        ("PNG", "P", {}),
    ],
)
@pytest.mark.parametrize("out_format", ["jpeg", "png", "webp"])
def test_input_formats_and_modes(
    make_job: MakeJob, fmt: str, mode: str, options: dict[str, object], out_format: str
) -> None:
    src = halves((320, 160), RED, BLUE).convert(mode)
    job = make_job(encode(src, fmt, **options))
    job.run(Thumbnail(), width=80, height=80, format=out_format)
    thumb = open_result(job.result())
    assert thumb.format == out_format.upper()
    assert thumb.size == (80, 40)


@pytest.mark.parametrize(
    "params",
    [
        {"width": 0},
        {"height": 4097},
        {"width": -5},
        {"width": "big"},
        {"format": "gif"},
        {"format": "JPEG"},
        {"quality": 90},
    ],
)
def test_invalid_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ThumbnailParams.model_validate(params)


def test_params_bounds_in_schema() -> None:
    props = ThumbnailParams.model_json_schema()["properties"]
    assert (props["width"]["minimum"], props["width"]["maximum"]) == (1, 4096)
    assert ThumbnailParams().model_dump() == {"width": 256, "height": 256, "format": "jpeg"}


def test_huge_declared_size_is_a_decompression_bomb(make_job: MakeJob) -> None:
    job = make_job(png_declaring(100_000, 100_000), filename="bomb.png")
    with pytest.raises(ProcessingError) as err:
        job.run(Thumbnail())
    assert err.value.code == "decompression_bomb"
    assert job.result() == b""


def test_own_pixel_limit_is_checked_before_decoding(make_job: MakeJob) -> None:
    # 10000x10000 is under Pillow's error threshold but over max_pixels.
    job = make_job(png_declaring(10_000, 10_000))
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ProcessingError) as err:
        job.run(Thumbnail())
    assert err.value.code == "decompression_bomb"
    assert "10000x10000" in err.value.message


def test_pillow_bomb_warning_as_error_is_mapped(make_job: MakeJob) -> None:
    job = make_job(png_declaring(10_000, 10_000))
    with warnings.catch_warnings(), pytest.raises(ProcessingError) as err:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        job.run(Thumbnail())
    assert err.value.code == "decompression_bomb"


def test_max_pixels_is_per_class_not_global(make_job: MakeJob) -> None:
    class Tiny(Thumbnail):
        max_pixels = 100

    pillow_limit = Image.MAX_IMAGE_PIXELS
    job = make_job(encode(Image.new("RGB", (20, 20)), "PNG"))
    with pytest.raises(ProcessingError) as err:
        job.run(Tiny())
    assert err.value.code == "decompression_bomb"
    assert pillow_limit == Image.MAX_IMAGE_PIXELS


def test_truncated_jpeg_is_corrupt(make_job: MakeJob) -> None:
    noise = Image.effect_noise((600, 400), 80).convert("RGB")
    data = encode(noise, "JPEG", quality=95)
    job = make_job(data[: len(data) // 2], filename="cut.jpg")
    with pytest.raises(ProcessingError) as err:
        job.run(Thumbnail())
    assert err.value.code == "corrupt_image"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,  # signature, then a broken IHDR
        b"\xff\xd8\xff" + bytes(range(256)),  # JPEG marker, then junk
        png_declaring(10, 10),  # pixel data too short for the declared size
        b"not an image at all",
    ],
)
def test_garbage_is_corrupt(make_job: MakeJob, data: bytes) -> None:
    with pytest.raises(ProcessingError) as err:
        make_job(data).run(Thumbnail())
    assert err.value.code == "corrupt_image"


def test_progress_reaches_one(make_job: MakeJob) -> None:
    job = make_job(encode(Image.new("RGB", (500, 500), RED), "PNG"))
    job.run(Thumbnail())
    assert len(job.progress) >= 3
    assert job.progress == sorted(job.progress)
    assert job.progress[-1] == 1.0


def test_cancelled_before_start(make_job: MakeJob) -> None:
    job = make_job(encode(Image.new("RGB", (500, 500), RED), "PNG"))
    job.cancel.set()
    with pytest.raises(Cancelled):
        job.run(Thumbnail())
    assert job.progress == []


def test_cancelled_while_running(make_job: MakeJob) -> None:
    job = make_job(encode(Image.new("RGB", (500, 500), RED), "PNG"), cancel_after_reports=1)
    with pytest.raises(Cancelled):
        job.run(Thumbnail())
    assert job.result() == b""


def test_accepts_image_types_only() -> None:
    t = Thumbnail()
    assert t.accepts("image/webp")
    assert not t.accepts("image/svg+xml")
    assert not t.accepts("application/pdf")
