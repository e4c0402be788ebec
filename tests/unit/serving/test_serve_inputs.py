"""Uploads: the type comes from the bytes, images are size-checked before decoding, PDFs have page limits."""

from __future__ import annotations

import pytest

from deepsynth_cli.serving.config import LimitsConfig
from deepsynth_cli.serving.inputs import InputError, read_upload, sniff
from tests.unit.serving.uploads import encoded, encrypted_pdf, pdf, png, png_claiming

LIMITS = LimitsConfig()


def refused(data: bytes, limits: LimitsConfig = LIMITS) -> tuple[int, str]:
    with pytest.raises(InputError) as caught:
        read_upload(data, limits)
    return caught.value.status, caught.value.code


def test_the_type_is_read_from_the_bytes() -> None:
    assert sniff(png()) == "png"
    assert sniff(encoded("JPEG")) == "jpeg"
    assert sniff(encoded("WEBP")) == "webp"
    assert sniff(pdf()) == "pdf"
    assert sniff("Un texte accentué, العربية.\n".encode()) == "text"
    assert sniff(b"\xef\xbb\xbfwith a BOM") == "text"


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_images_become_one_rgb_page(kind: str) -> None:
    upload = read_upload(encoded(kind, (80, 60)), LIMITS)
    assert upload.kind == kind.lower() and upload.text is None
    assert [(page.size, page.mode) for page in upload.pages] == [((80, 60), "RGB")]


def test_pdf_pages_are_rasterised_at_the_configured_dpi() -> None:
    upload = read_upload(pdf(pages=2), LIMITS)
    assert upload.kind == "pdf" and len(upload.pages) == 2 and upload.notice is None
    assert upload.pages[0].size == (794, 1123)  # A4 at 96 dpi
    assert upload.pages[0].mode == "L"  # greyscale like the training pages: the processor makes RGB itself
    assert read_upload(pdf(), LimitsConfig(pdf_dpi=72)).pages[0].size == (595, 842)


def test_text_files_are_text() -> None:
    upload = read_upload(b"# Title\n\nBody of the note.", LIMITS)
    assert (upload.kind, upload.text, upload.pages) == ("text", "# Title\n\nBody of the note.", [])


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty_file"),
        (bytes(range(256)) * 4, 415, "unsupported_file"),  # not UTF-8
        (b"text with a NUL\x00 byte", 415, "unsupported_file"),
        (b"GIF89a" + b"\x00" * 32, 415, "unsupported_file"),
        (png()[:40], 422, "corrupt_image"),  # truncated
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, 422, "corrupt_image"),
        (b"\xff\xd8\xff\xe0 not a jpeg", 422, "corrupt_image"),
        (png_claiming(100_000, 100_000), 413, "image_too_large"),  # decompression bomb: never decoded
        (png(3, 3), 422, "image_too_small"),
        (encrypted_pdf(), 422, "encrypted_pdf"),
        (b"%PDF-1.7\nnot really a pdf", 422, "malformed_pdf"),
        (pdf()[:200], 422, "malformed_pdf"),
    ],
    ids=[
        "empty",
        "binary",
        "nul",
        "gif",
        "truncated-png",
        "garbage-png",
        "garbage-jpeg",
        "bomb",
        "tiny-image",
        "encrypted-pdf",
        "malformed-pdf",
        "truncated-pdf",
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, status: int, code: str) -> None:
    assert refused(data) == (status, code)


def test_pixel_and_page_limits() -> None:
    small = LimitsConfig(max_image_pixels=10_000, max_pdf_pages=2)
    assert refused(png(200, 200), small) == (413, "image_too_large")
    assert read_upload(png(100, 100), small).pages[0].size == (100, 100)  # exactly at the limit
    assert refused(pdf(pages=3), small) == (413, "too_many_pages")
    assert refused(pdf(size=(14_400, 14_400)), LIMITS) == (413, "page_too_large")  # 200 x 200 inch page


def test_only_the_pages_the_model_reads_are_rasterised() -> None:
    upload = read_upload(pdf(pages=9), LIMITS, max_pages=3)
    assert (upload.page_count, len(upload.pages)) == (9, 3)
    assert upload.pixels == 3 * 794 * 1123


def test_pixel_budget_per_request_is_checked_before_drawing() -> None:
    """16 pages of 4740 x 4740 points are 6320 x 6320 px each at 96 dpi: each is under the per-page limit, four
    of them are over the per-request budget, and nothing is drawn before the refusal."""
    huge = pdf(pages=16, size=(4740, 4740))
    assert len(huge) < 5000
    assert refused(huge) == (413, "too_many_pixels")  # all 16 pages when no model limit is given
    assert read_upload(huge, LIMITS, max_pages=1).pixels == 6320 * 6320  # one page fits the 64 MP budget
    with pytest.raises(InputError) as caught:
        read_upload(huge, LIMITS, max_pages=4)
    assert caught.value.code == "too_many_pixels" and "159,769,600 pixels" in caught.value.message
    tight = LimitsConfig(max_request_pixels=20_000)
    assert refused(png(200, 200), tight) == (413, "too_many_pixels")


def test_greyscale_images_stay_greyscale() -> None:
    assert read_upload(png(64, 48, mode="L"), LIMITS).pages[0].mode == "L"
    assert read_upload(png(64, 48, mode="LA"), LIMITS).pages[0].mode == "L"
    assert read_upload(png(64, 48, mode="RGBA"), LIMITS).pages[0].mode == "RGB"


def test_an_empty_password_pdf_is_read_with_a_notice() -> None:
    upload = read_upload(encrypted_pdf(empty_password=True), LIMITS)
    assert upload.page_count == 1 and upload.notice is not None and "empty password" in upload.notice
