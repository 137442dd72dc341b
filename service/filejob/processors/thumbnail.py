"""Make a bounded-size thumbnail of an image with Pillow."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import ClassVar, Literal

from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from filejob.processors.base import Output, ProcessingError, Processor, ProcessorContext

# output format -> (Pillow format, filename suffix, content type)
_FORMATS: dict[str, tuple[str, str, str]] = {
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "png": ("PNG", "png", "image/png"),
    "webp": ("WEBP", "webp", "image/webp"),
}
# EXIF orientations that turn the image by 90 degrees, swapping width and height.
_SWAPS_AXES = {5, 6, 7, 8}
# Modes that resize well; palette and bilevel images would be resized with NEAREST.
_WORKING_MODES = {"RGB", "RGBA", "L", "LA"}
# Errors Pillow raises while decoding a damaged file (truncated data, bad chunks, bad headers).
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


class ThumbnailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(256, ge=1, le=4096, description="Maximum thumbnail width in pixels.")
    height: int = Field(256, ge=1, le=4096, description="Maximum thumbnail height in pixels.")
    format: Literal["jpeg", "png", "webp"] = Field(
        "jpeg", description="Output image format. JPEG output flattens transparency onto white."
    )


class Thumbnail(Processor[ThumbnailParams]):
    name = "thumbnail"
    description = (
        "Scale an image down to fit a bounding box, keeping its aspect ratio and applying EXIF "
        "orientation. Images are never enlarged."
    )
    content_types = (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
    )
    Params = ThumbnailParams
    isolation = "process"

    # Checked against the header before decoding. Ours rather than Pillow's process-wide
    # Image.MAX_IMAGE_PIXELS, so setting it does not change other Pillow users.
    max_pixels: ClassVar[int] = 50_000_000

    def run(self, ctx: ProcessorContext, params: ThumbnailParams) -> Output:
        pil_format, suffix, content_type = _FORMATS[params.format]
        ctx.check_cancelled()
        try:
            thumb = self._make(ctx, params)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # The warning only arrives here if the process turns warnings into errors; either
            # way the image is past Pillow's own limit.
            raise ProcessingError(str(exc), code="decompression_bomb") from None
        except UnidentifiedImageError:
            # Pillow's own text names the file object it was given (a server path).
            raise ProcessingError(
                "cannot decode image: no supported image format recognises it (an unknown "
                "format, or a damaged or empty header)",
                code="corrupt_image",
            ) from None
        except _DECODE_ERRORS as exc:
            raise ProcessingError(f"cannot decode image: {exc}", code="corrupt_image") from None
        ctx.check_cancelled()

        buf = io.BytesIO()
        thumb.save(buf, format=pil_format, **_save_options(params.format))
        ctx.report(0.95)
        ctx.check_cancelled()
        ctx.output.write(buf.getbuffer())
        ctx.report(1.0)
        stem = PurePosixPath(ctx.input_filename).stem or "image"
        return Output(filename=f"{stem}.thumbnail.{suffix}", content_type=content_type)

    def _make(self, ctx: ProcessorContext, params: ThumbnailParams) -> Image.Image:
        # open() is lazy and reads only the header, so the size check below runs before any
        # pixel data is decompressed. Pillow does not close a file object it was handed.
        with Image.open(ctx.input) as img:
            width, height = img.size
            if width * height > self.max_pixels:
                raise ProcessingError(
                    f"image is {width}x{height} pixels, more than the {self.max_pixels} allowed",
                    code="decompression_bomb",
                )
            ctx.report(0.1)
            ctx.check_cancelled()

            if isinstance(img, JpegImagePlugin.JpegImageFile):  # also MPO, from many phones
                # Let libjpeg decode at 1/2..1/8 scale. The box is for the displayed image, so
                # swap it when EXIF turns the stored one by 90 degrees; twice the box keeps
                # enough pixels for a good downscale.
                w, h = params.width, params.height
                if img.getexif().get(ExifTags.Base.Orientation, 1) in _SWAPS_AXES:
                    w, h = h, w
                img.draft(None, (w * 2, h * 2))
            img.load()
            ctx.report(0.5)
            ctx.check_cancelled()

            # Both return new images, detached from the file the `with` is about to release.
            upright = ImageOps.exif_transpose(img)
            work = _to_working_mode(upright)
        work.thumbnail((params.width, params.height), Image.Resampling.LANCZOS)
        ctx.report(0.8)
        return _to_output_mode(work, params.format)


def _to_working_mode(img: Image.Image) -> Image.Image:
    if img.mode in _WORKING_MODES:
        return img
    return img.convert("RGBA" if img.has_transparency_data else "RGB")


def _to_output_mode(img: Image.Image, fmt: str) -> Image.Image:
    if fmt == "jpeg":
        if img.mode in ("RGBA", "LA"):
            # JPEG has no alpha; flatten onto white rather than exposing whatever colour the
            # transparent pixels happen to store.
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return img
    if fmt == "webp" and img.mode in ("L", "LA"):
        return img.convert("RGBA" if img.mode == "LA" else "RGB")
    return img


def _save_options(fmt: str) -> dict[str, object]:
    if fmt == "jpeg":
        return {"quality": 85, "optimize": True}
    if fmt == "webp":
        return {"quality": 80}
    return {}
