"""Decoding one stored image to RGB, with an error that names the file to fix."""

from __future__ import annotations

import io

from PIL import Image

from .errors import DataError


def decode_rgb(image) -> Image.Image:
    """An RGB PIL image from a decoded image or an undecoded ``{"bytes", "path"}`` record.

    Grayscale, RGBA and palette images are converted; an unreadable or truncated file is a DataError
    naming it (images are decoded here, not by ``datasets``, so the error can say what to fix).
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    source = image.get("path") or "<embedded bytes>"
    try:
        opened = Image.open(io.BytesIO(image["bytes"])) if image.get("bytes") else Image.open(image["path"])
        opened.load()  # forces the full decode, so truncation shows up here
        return opened.convert("RGB")
    except (OSError, ValueError, SyntaxError, TypeError) as error:
        raise DataError(
            f"cannot decode image {source} ({type(error).__name__}: {error}); remove or replace it in the dataset"
        ) from None
