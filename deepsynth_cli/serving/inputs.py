"""Uploaded files into pages or text: the type is read from the bytes (never the filename or the client's
Content-Type), images are size-checked before they are decoded, PDFs are rasterised with page and pixel limits.

Every refusal is an `InputError` with an HTTP status, a stable code and a message that says what was wrong.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from deepsynth_cli.serving.config import LimitsConfig

Kind = Literal["png", "jpeg", "webp", "pdf", "text"]
MIN_SIDE = 16  # smaller "pages" hold nothing to read, and a 3 x 3 image looks channels-first to the processor


class InputError(Exception):
    """Bad input: answered with `status` and `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Upload:
    """A file turned into what the model reads: page images, or text to render like in training."""

    kind: Kind
    pages: list[Image.Image]
    text: str | None = None


def sniff(data: bytes) -> Kind:
    """The file's type from its first bytes. Text must be UTF-8 without control characters (NUL and the like)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:1024].lstrip(b"\x00\t\n\r\f ").startswith(b"%PDF-"):  # readers accept junk before the header
        return "pdf"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            415, "unsupported_file", "unsupported file type: send a PNG, JPEG or WebP page, a PDF, or UTF-8 text"
        ) from None
    if any(ord(char) < 32 and char not in "\t\n\r\f" for char in text):
        raise InputError(415, "unsupported_file", "binary file: send a PNG, JPEG or WebP page, a PDF, or UTF-8 text")
    return "text"


def read_upload(data: bytes, limits: LimitsConfig) -> Upload:
    if not data:
        raise InputError(422, "empty_file", "the file is empty")
    kind = sniff(data)
    if kind == "text":
        return Upload("text", [], data.decode("utf-8-sig"))
    if kind == "pdf":
        return Upload("pdf", read_pdf(data, limits))
    return Upload(kind, [read_image(data, limits)])


def read_image(data: bytes, limits: LimitsConfig) -> Image.Image:
    """Decode one page image. Its size is checked from the header first: a 50 KB PNG can claim 100,000 x 100,000
    pixels (a decompression bomb) and would take 10 GB to decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise InputError(
                    413,
                    "image_too_large",
                    f"image of {width} x {height} pixels is over the limit of {limits.max_image_pixels:,} pixels",
                )
            if min(width, height) < MIN_SIDE:
                raise InputError(
                    422, "image_too_small", f"image of {width} x {height} pixels: a page needs {MIN_SIDE} px a side"
                )
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(413, "image_too_large", f"image refused as a decompression bomb: {error}") from None
    except Exception:  # PIL raises OSError, SyntaxError, ValueError, struct.error ... for broken files
        raise InputError(422, "corrupt_image", "the image cannot be decoded (truncated or corrupt file)") from None
    return image.convert("RGB")


def read_pdf(data: bytes, limits: LimitsConfig) -> list[Image.Image]:
    """Rasterise every page at `pdf_dpi` (greyscale text pages, like the training pages)."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise InputError(422, "encrypted_pdf", "the PDF is encrypted (password protected)") from None
        raise InputError(422, "malformed_pdf", "the PDF cannot be read (malformed or truncated)") from None
    try:
        count = len(document)
        if count == 0:
            raise InputError(422, "malformed_pdf", "the PDF has no pages")
        if count > limits.max_pdf_pages:
            raise InputError(413, "too_many_pages", f"the PDF has {count} pages; the limit is {limits.max_pdf_pages}")
        scale = limits.pdf_dpi / 72.0
        pages = []
        for index in range(count):
            page = document[index]
            try:
                width, height = page.get_size()
                pixels = math.ceil(width * scale) * math.ceil(height * scale)
                if pixels > limits.max_image_pixels:
                    raise InputError(
                        413,
                        "page_too_large",
                        f"PDF page {index + 1} would be {pixels:,} pixels at {limits.pdf_dpi:g} dpi; "
                        f"the limit is {limits.max_image_pixels:,}",
                    )
                bitmap = page.render(scale=scale, grayscale=True)
                pages.append(bitmap.to_pil().convert("RGB"))
            finally:
                page.close()
        return pages
    except InputError:
        raise
    except pdfium.PdfiumError:
        raise InputError(422, "malformed_pdf", "a PDF page cannot be rendered (malformed file)") from None
    finally:
        document.close()
