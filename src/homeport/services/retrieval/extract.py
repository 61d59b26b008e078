"""Text from the file types file search reads: plain text, Markdown, HTML, JSON, code, PDF, DOCX."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import PurePath

from ...errors import InvalidRequest

__all__ = ["SUPPORTED_EXTENSIONS", "check_supported", "extract_text", "ExtractionError"]

_TEXT = {
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".log", ".tex", ".xml", ".yaml", ".yml", ".toml", ".ini",
    ".py", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".go", ".rs",
    ".rb", ".php", ".sh", ".css", ".scss", ".sql", ".swift", ".kt", ".scala", ".lua", ".r", ".pl", ".m",
}  # fmt: skip
_HTML = {".html", ".htm"}
SUPPORTED_EXTENSIONS = sorted(_TEXT | _HTML | {".json", ".jsonl", ".pdf", ".docx"})


class ExtractionError(Exception):
    """The file could not be read as its type says (a broken PDF, binary data in a .txt)."""


# What a compressed document may unpack to. A DOCX is a zip that python-docx reads whole into memory
# (about 4 bytes of memory per byte unpacked): a 750 KB one that unpacks to 310 MB took 1.1 GB, so a
# zip bomb within the upload limit would take the server down. PDF streams are capped by pypdf
# (75 MB each); their text together is capped here.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_TEXT_CHARS = 100_000_000


def check_supported(filename: str, param: str = "file") -> None:
    if PurePath(filename).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidRequest(
            f"Invalid file format for file search: '{filename}'. Supported formats: "
            + ", ".join(SUPPORTED_EXTENSIONS) + ".",
            param=param, code="unsupported_file",
        )  # fmt: skip


def extract_text(filename: str, data: bytes) -> str:
    suffix = PurePath(filename).suffix.lower()
    try:
        if suffix == ".pdf":
            return _pdf(data)
        if suffix == ".docx":
            return _docx(data)
        text = _decode(data)
        if suffix in _HTML:
            return _html(text)
        if suffix == ".json":
            json.loads(text)  # must be JSON; searched as written
        return text
    except ExtractionError:
        raise
    except Exception as exc:  # a library's own error about a broken file
        raise ExtractionError(f"Could not read {filename}: {exc}") from exc


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ExtractionError("The file looks binary, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    pages, chars = [], 0
    for page in reader.pages:
        pages.append(page.extract_text() or "")
        chars += len(pages[-1])
        if chars > MAX_TEXT_CHARS:
            raise ExtractionError(f"The PDF holds more than {MAX_TEXT_CHARS:,} characters of text: more than file "
                                  "search reads from one file.")  # fmt: skip
    return "\n\n".join(pages)


def _docx(data: bytes) -> str:
    import zipfile

    from docx import Document

    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # sizes as declared: zipfile never unpacks more
        unpacked = sum(entry.file_size for entry in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise ExtractionError(f"The document unpacks to {unpacked // 2**20:,} MB, more than the "
                              f"{MAX_UNPACKED_BYTES // 2**20} MB a DOCX may (a zip bomb?).")  # fmt: skip
    doc = Document(io.BytesIO(data))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        parts += ["\t".join(cell.text for cell in row.cells) for row in table.rows]
    return "\n".join(parts)


class _Text(HTMLParser):
    _SKIP = {"script", "style", "head", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(text: str) -> str:
    parser = _Text()
    parser.feed(text)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
