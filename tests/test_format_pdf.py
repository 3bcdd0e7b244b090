"""The PDF extractor on real PDFs (Debian's shared-mime-info spec and libtasn1 manual) and on broken ones.

Fixtures in tests/site_pages/formats/: manual.pdf and libtasn1.pdf are the Debian files as shipped; the others are
derived from manual.pdf by ``python tests/test_format_pdf.py`` (see ``build_fixtures``).
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from mcp_web_ingest.errors import ExtractError
from mcp_web_ingest.ingest.formats import pdf
from mcp_web_ingest.ingest.formats.pdf import extract_pdf
from mcp_web_ingest.models import ExtractedPage, Section

FORMATS = Path(__file__).parent / "site_pages" / "formats"
URL = "https://docs.example.org/specs/manual.pdf"


def _read(name: str) -> bytes:
    return (FORMATS / name).read_bytes()


def _section(page: ExtractedPage, heading: str) -> Section:
    return next(s for s in page.sections if s.heading == heading)


def _flat(text: str) -> str:
    return " ".join(text.split())


def build_pdf(pages: list[list[tuple[float, str]]], image: tuple[int, int, bytes] | None = None) -> bytes:
    """A minimal PDF: each page draws its (font size, text) lines in Helvetica, or only ``image`` (w, h, gray)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if image:
        w, h, gray = image
        data = zlib.compress(gray)
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
            b"/Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (w, h, len(data), data)
        )
    kids = []
    for lines in pages:
        if image:
            content = b"q 480 0 0 640 66 76 cm /Im0 Do Q"
        else:
            ops, y = [], 740.0
            for size, text in lines:
                escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
                ops.append(b"BT /F1 %.1f Tf 72 %.1f Td (%s) Tj ET" % (size, y, escaped))
                y -= size * 1.6
            content = b"\n".join(ops)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        resources = b"/XObject << /Im0 4 0 R >>" if image else b"/Font << /F1 3 0 R >>"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << %s >> /Contents %d 0 R >>"
            % (resources, len(objects))
        )
        kids.append(len(objects))
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def build_fixtures() -> None:
    """Write the derived fixtures from manual.pdf (pypdf needed; cryptography for AES)."""
    import pypdf

    manual = _read("manual.pdf")
    for name, pages, user_password, algorithm in (
        ("encrypted.pdf", (0, 2), "secret", "AES-256"),
        ("encrypted-empty-password.pdf", (0, 3), "", "AES-128"),
    ):
        writer = pypdf.PdfWriter()
        writer.append(pypdf.PdfReader(io.BytesIO(manual)), pages=pages)
        writer.encrypt(user_password=user_password, owner_password="owner-only", algorithm=algorithm)
        out = io.BytesIO()
        writer.write(out)
        (FORMATS / name).write_bytes(out.getvalue())
    (FORMATS / "truncated.pdf").write_bytes(manual[: len(manual) // 2])
    # A "scan": one gray image per page and no text at all.
    gray = bytes((x * 7 + y * 3) % 256 if (x // 8 + y // 8) % 3 else 255 for y in range(160) for x in range(120))
    (FORMATS / "image-only.pdf").write_bytes(build_pdf([[], []], image=(120, 160, gray)))


@pytest.fixture(scope="module")
def manual() -> ExtractedPage:
    return extract_pdf(_read("manual.pdf"), URL)


@pytest.fixture(scope="module")
def tasn() -> ExtractedPage:
    return extract_pdf(_read("libtasn1.pdf"), "https://www.gnu.org/software/libtasn1/manual/libtasn1.pdf")


def test_title_is_the_large_type_on_the_cover_when_the_info_title_is_empty(manual: ExtractedPage) -> None:
    assert manual.title == "Shared MIME-info Database"


def test_outline_entries_become_nested_sections(manual: ExtractedPage) -> None:
    headed = [s for s in manual.sections if s.level]
    assert len(headed) == 24  # every outline entry
    assert [(s.level, s.heading) for s in headed[:5]] == [
        (1, "1. Introduction"),
        (2, "1.1. Version"),
        (2, "1.2. What is this spec?"),
        (2, "1.3. Language used in this specification"),
        (1, "2. Unified system"),
    ]
    assert _section(manual, "2.9. The mime.cache files").path == ("2. Unified system", "2.9. The mime.cache files")
    assert _section(manual, "References").path == ("3. Contributors", "References")


def test_anchors_are_the_pages_the_headings_are_on(manual: ExtractedPage) -> None:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(_read("manual.pdf")))
    for heading, page in (("1.1. Version", 1), ("2.2. The source XML files", 4), ("2.5. The magic files", 8),
                          ("2.9. The mime.cache files", 11), ("2.17. User modification", 17)):  # fmt: skip
        assert _section(manual, heading).anchor == f"page={page}"
        assert heading in reader.pages[page - 1].extract_text()  # the fixture really has it there
    assert manual.sections[0].level == 0 and manual.sections[0].anchor == "page=1"
    assert all(re.fullmatch(r"page=\d+", s.anchor or "") for s in manual.sections)


def test_text_is_readable_and_split_at_the_headings(manual: ExtractedPage) -> None:
    version = _section(manual, "1.1. Version").markdown
    assert (
        version == "This is version 0.21 of the Shared MIME-info Database specification, last updated 2 October 2018."
    )
    spec = _section(manual, "1.2. What is this spec?").markdown
    assert spec.startswith("Many programs and desktops use the MIME system[MIME] to represent the types of files.")
    assert spec.count("\n\n") == 4  # five paragraphs
    assert "1.3. Language" not in spec  # the next heading (same page) starts the next section
    layout = _flat(_section(manual, "2.1. Directory layout").markdown)
    assert (
        "Applications must be able to extend the database in any way when they are installed, to add both new rules"
        in layout
    )
    assert _section(manual, "2.13. Nonregular files").markdown.startswith("Sometimes it is useful to assign MIME types")


def test_no_page_numbers_or_running_headers_in_the_text(manual: ExtractedPage) -> None:
    lines = {line.strip() for s in manual.sections for line in s.markdown.split("\n")}
    assert "Shared MIME-info Database" not in lines  # the running header of pages 2-17
    assert not {str(n) for n in range(1, 18)} & lines  # the page numbers in the footers
    assert "\f" not in manual.markdown


def test_texinfo_manual_headings_on_one_page_and_hyphenation(tasn: ExtractedPage) -> None:
    assert tasn.title == "Libtasn1"
    for heading, start in (("Simple parsing", "For simple types like OCTET STRING"),
                           ("Library Notes", "The header file of this library is libtasn1.h."),
                           ("Future developments", "• Add functions for a C code file generation")):  # fmt: skip
        section = _section(tasn, heading)
        assert section.anchor == "page=7" and section.markdown.startswith(start)
    functions = _section(tasn, "ASN.1 schema functions")
    assert functions.path == ("4 Function reference", "ASN.1 schema functions") and functions.anchor == "page=11"
    # "declara-" / "tions." across a line break is joined; so is an identifier TeX broke after an underscore.
    assert "file that contains ASN.1 declarations." in functions.markdown
    assert "declara-" not in tasn.markdown
    assert "ASN1_SYNTAX_ERROR if the syntax is not correct" in _flat(tasn.markdown)
    assert "Chapter 4: Function reference" not in tasn.markdown  # running header
    assert "2.3 Simple parsing … 4" in tasn.sections[0].markdown  # contents: dot leaders shortened
    assert "Copyright © 2001–2022 Free Software Foundation" in tasn.sections[0].markdown


def test_without_an_outline_headings_come_from_font_sizes() -> None:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(_read("manual.pdf"))), import_outline=False)
    out = io.BytesIO()
    writer.write(out)
    page = extract_pdf(out.getvalue(), URL)
    magic = _section(page, "2.5. The magic files")
    assert (magic.level, magic.anchor, magic.path) == (2, "page=8", ("2. Unified system", "2.5. The magic files"))
    assert _section(page, "2. Unified system").level == 1
    assert _section(page, "1.1. Version").markdown.startswith("This is version 0.21")


def test_uniform_text_without_outline_gives_one_section_per_page() -> None:
    body = build_pdf([[(11, "Quarterly report on the state of things.")], [], [(11, "Closing remarks here.")]])
    page = extract_pdf(body, "https://example.org/files/report.pdf?dl=1")
    assert page.title == "report"
    assert [(s.level, s.heading, s.anchor, s.path) for s in page.sections] == [
        (1, "Page 1", "page=1", ("Page 1",)),
        (1, "Page 3", "page=3", ("Page 3",)),  # the empty page 2 makes no section
    ]
    assert page.sections[1].markdown == "Closing remarks here."


def test_pdf_text_cannot_become_markup() -> None:
    body = build_pdf([[(11, "# not a heading"), (11, "<script>alert(1)</script> [x](javascript:alert(1))")]])
    text = extract_pdf(body, URL).markdown
    assert "\\# not a heading" in text
    assert "<script>" not in text and "javascript:" not in text


def test_encrypted_pdf_is_refused() -> None:
    with pytest.raises(
        ExtractError, match=r"is encrypted \(password-protected\); only unencrypted PDFs can be indexed"
    ):
        extract_pdf(_read("encrypted.pdf"), URL)


def test_encrypted_pdf_with_empty_user_password_is_indexed() -> None:
    page = extract_pdf(_read("encrypted-empty-password.pdf"), URL)
    assert page.title == "Shared MIME-info Database"
    assert _section(page, "1.1. Version").markdown.startswith("This is version 0.21")
    assert _section(page, "2.1. Directory layout").anchor == "page=2"


def test_image_only_pdf_is_refused() -> None:
    with pytest.raises(ExtractError, match=r"has no text layer \(scanned or image-only\); OCR is not supported"):
        extract_pdf(_read("image-only.pdf"), URL)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the file is empty"),
        (random.Random(7).randbytes(5000), "no %PDF- header"),
        (b"%PDF-1.7\n" + random.Random(8).randbytes(5000), "does not end with %%EOF"),
        (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\nstartxref\n999999\n%%EOF\n", "startxref"),
    ],
)
def test_not_a_whole_pdf_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ExtractError, match=rf"is damaged or truncated: .*{re.escape(reason)}"):
        extract_pdf(body, URL)


def test_truncated_pdf_is_refused_although_pages_could_be_recovered() -> None:
    truncated = _read("truncated.pdf")
    assert _read("manual.pdf").startswith(truncated)  # the fixture is the first half of manual.pdf
    with pytest.raises(ExtractError, match=r"is damaged or truncated: it does not end with %%EOF"):
        extract_pdf(truncated, URL)


def test_corrupt_objects_raise_only_extract_error() -> None:
    manual = _read("manual.pdf")
    rng = random.Random(11)
    outcomes = set()
    for _ in range(12):
        body = bytearray(manual)
        start = rng.randrange(0, len(body) - 2000)
        body[start : start + 1500] = rng.randbytes(1500)  # the trailer (last KiB) is left whole
        try:
            outcomes.add(type(extract_pdf(bytes(body), URL)).__name__)
        except ExtractError as e:
            outcomes.add("ExtractError")
            assert str(e).startswith(f"The PDF at {URL}")
    assert outcomes <= {"ExtractedPage", "ExtractError"}


def test_page_and_text_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_PAGES", 16)
    with pytest.raises(ExtractError, match="has 17 pages; at most 16 pages can be indexed"):
        extract_pdf(_read("manual.pdf"), URL)
    monkeypatch.setattr(pdf, "MAX_PAGES", 2000)
    monkeypatch.setattr(pdf, "MAX_TEXT_CHARS", 10_000)
    with pytest.raises(ExtractError, match="has over 10,000 characters of text; too large to index"):
        extract_pdf(_read("manual.pdf"), URL)


def test_aes_without_the_cryptography_package_says_what_is_missing() -> None:
    # pypdf picks its AES provider when imported: hide cryptography from a fresh interpreter.
    code = (
        "import sys; sys.modules['cryptography'] = sys.modules['Crypto'] = None\n"
        "from mcp_web_ingest.errors import ExtractError\n"
        "from mcp_web_ingest.ingest.formats.pdf import extract_pdf\n"
        "try:\n    extract_pdf(open(sys.argv[1], 'rb').read(), 'u')\n"
        "except ExtractError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(FORMATS / "encrypted-empty-password.pdf")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert "The PDF at u cannot be read here: cryptography" in done.stdout, done.stderr


if __name__ == "__main__":
    sys.exit(build_fixtures())
