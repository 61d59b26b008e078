"""Text from the document formats file search reads (services/retrieval/extract.py), and the bounds
on what one file may cost: a DOCX that unpacks to more than MAX_UNPACKED_BYTES, a PDF with more
than MAX_TEXT_CHARS of text, a file of more than MAX_FILE_TOKENS tokens."""

from __future__ import annotations

import io
import zipfile

import pytest

from homeport.services.retrieval import extract
from homeport.services.retrieval.chunking import MAX_FILE_TOKENS, TooManyTokens, chunk_text
from homeport.services.retrieval.extract import ExtractionError, extract_text


def _docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    from docx import Document

    doc = Document()
    for text in paragraphs:
        doc.add_paragraph(text)
    if table:
        grid = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _pdf(pages: list[str]) -> bytes:
    """A PDF whose pages each show one line of text in Helvetica."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})  # fmt: skip
    for text in pages:
        page = writer.add_blank_page(612, 792)
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_docx_paragraphs_and_tables_are_read() -> None:
    data = _docx(["The ferry leaves at nine.", "It returns at six."], [["port", "time"], ["Oban", "09:00"]])
    text = extract_text("timetable.docx", data)
    assert "The ferry leaves at nine." in text and "It returns at six." in text
    assert "Oban\t09:00" in text


def test_a_docx_that_unpacks_past_the_bound_is_refused_before_it_is_read(monkeypatch) -> None:
    data = _docx(["x" * 200_000])  # compresses to a few hundred bytes
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(entry.file_size for entry in archive.infolist())
    monkeypatch.setattr(extract, "MAX_UNPACKED_BYTES", unpacked - 1)
    with pytest.raises(ExtractionError, match="unpacks to"):
        extract_text("bomb.docx", data)
    monkeypatch.setattr(extract, "MAX_UNPACKED_BYTES", unpacked)
    assert "x" * 1000 in extract_text("fine.docx", data)


def test_pdf_pages_are_read_in_order_and_too_much_text_is_refused(monkeypatch) -> None:
    data = _pdf(["Lighthouse keepers kept logs.", "The lamp was lit at dusk."])
    text = extract_text("keepers.pdf", data)
    assert text.index("Lighthouse keepers kept logs.") < text.index("The lamp was lit at dusk.")
    monkeypatch.setattr(extract, "MAX_TEXT_CHARS", len("Lighthouse keepers kept logs.") + 5)  # page 2 passes it
    with pytest.raises(ExtractionError, match="more than"):
        extract_text("keepers.pdf", data)


@pytest.mark.parametrize("name", ["broken.pdf", "broken.docx"])
def test_a_broken_document_is_an_extraction_error(name: str) -> None:
    with pytest.raises(ExtractionError, match="Could not read"):
        extract_text(name, b"PK\x03\x04 not really a document" * 10)


def test_a_file_past_the_token_limit_is_refused_when_counted() -> None:
    def words(texts: list[str]) -> list[list[int]]:
        return [[1] * len(t.split()) for t in texts]

    assert sum(c.tokens for c in chunk_text("word " * 1000, words, 400, 0)) == 1000
    with pytest.raises(TooManyTokens, match="5,000,000"):
        chunk_text("word " * (MAX_FILE_TOKENS + 1), words, 400, 200)
