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
    pages: list[Image.Image]  # the pages the model reads (a PDF's first `max_pages`), greyscale unless in colour
    text: str | None = None
    page_count: int = 0  # pages the file has: a PDF's pages beyond `max_pages` are counted, never rasterised
    notice: str | None = None  # something the client should know about how the file was read

    def __post_init__(self) -> None:
        self.page_count = self.page_count or len(self.pages)

    @property
    def pixels(self) -> int:
        return sum(page.width * page.height for page in self.pages)


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


def read_upload(data: bytes, limits: LimitsConfig, max_pages: int | None = None) -> Upload:
    """The file's pages (at most `max_pages` of a PDF are rasterised: the model reads no more) or its text."""
    if not data:
        raise InputError(422, "empty_file", "the file is empty")
    kind = sniff(data)
    if kind == "text":
        return Upload("text", [], data.decode("utf-8-sig"))
    if kind == "pdf":
        return read_pdf(data, limits, max_pages)
    return Upload(kind, [read_image(data, limits)])


def _over_budget(pixels: int, limits: LimitsConfig, what: str) -> InputError:
    return InputError(
        413,
        "too_many_pixels",
        f"{what} would be {pixels:,} pixels; the limit per request is {limits.max_request_pixels:,}: "
        "send fewer or smaller pages",
    )


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
            if width * height > limits.max_request_pixels:
                raise _over_budget(width * height, limits, f"the image of {width} x {height}")
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
    # Greyscale stays greyscale (a third of the memory of RGB); the processor makes RGB of the pages it reads.
    return image if image.mode in ("L", "RGB") else image.convert("RGB" if _has_colour(image) else "L")


def _has_colour(image: Image.Image) -> bool:
    return image.mode not in ("1", "L", "LA", "I", "I;16", "F")


def read_pdf(data: bytes, limits: LimitsConfig, max_pages: int | None = None) -> Upload:
    """Rasterise the first `max_pages` pages at `pdf_dpi`, greyscale like the training pages. Every page size is
    checked before anything is drawn: each against `max_image_pixels`, their sum against `max_request_pixels`."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

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
        # Opened without a password, yet encrypted: its user password is empty (readers open it the same way).
        encrypted = pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1
        notice = "the PDF is encrypted with an empty password; it was read without one" if encrypted else None
        scale = limits.pdf_dpi / 72.0
        shown = count if max_pages is None else min(count, max_pages)
        sizes = []
        for index in range(shown):
            width, height = document.get_page_size(index)
            pixels = math.ceil(width * scale) * math.ceil(height * scale)
            if pixels > limits.max_image_pixels:
                raise InputError(
                    413,
                    "page_too_large",
                    f"PDF page {index + 1} would be {pixels:,} pixels at {limits.pdf_dpi:g} dpi; "
                    f"the limit is {limits.max_image_pixels:,}",
                )
            sizes.append(pixels)
        if sum(sizes) > limits.max_request_pixels:
            raise _over_budget(sum(sizes), limits, f"the {shown} PDF pages read at {limits.pdf_dpi:g} dpi")
        pages = []
        for index in range(shown):
            page = document[index]
            try:
                bitmap = page.render(scale=scale, grayscale=True)
                pages.append(bitmap.to_pil().copy())  # a copy owns its pixels: the bitmap's buffer is freed now
                bitmap.close()
            finally:
                page.close()
        return Upload("pdf", pages, page_count=count, notice=notice)
    except InputError:
        raise
    except pdfium.PdfiumError:
        raise InputError(422, "malformed_pdf", "a PDF page cannot be rendered (malformed file)") from None
    finally:
        document.close()
