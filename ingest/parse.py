"""Parse one file into typed elements with unstructured, offline.

Runs in worker processes (see ``ingest.parallel``): it takes a path and plain settings
and returns a picklable ``ParsedDocument``. Every failure becomes ``ParsedDocument.error``
with a reason a person can act on; nothing here raises for a bad file.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ragline.ingest.confine import open_file
from ragline.ingest.offline_nlp import use_packaged_spacy_model
from ragline.ingest.plaintext import stream_text
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import ParsingSettings

# Layout noise that would pollute chunks; unstructured marks it by category.
_DROPPED_CATEGORIES = frozenset({"Header", "Footer", "PageNumber", "PageBreak", "Image"})
_OCR_TYPES = frozenset({"PDF", "JPG", "PNG", "TIFF", "BMP", "HEIC", "WEBP"})
_EMAIL_TYPES = frozenset({"EML", "MSG"})
_DELIMITED_TYPES = frozenset({"CSV", "TSV"})
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_READ_CHUNK = 1 << 20


class UnsupportedFileError(ValueError):
    """The file's type has no partitioner (archives, audio, unknown binaries)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def detect_file_type(path: Path, confined: bool = False) -> str:
    """The unstructured FileType name; ``confined``: read through the open file only (by
    path, unstructured would resolve a symlink's path again and could sniff another file)."""
    from unstructured.file_utils.filetype import detect_filetype
    from unstructured.file_utils.model import FileType

    if confined:
        with path.open("rb") as handle:
            file_type = detect_filetype(file=handle, metadata_file_path=path.name)
    else:
        file_type = detect_filetype(file_path=str(path))
    if file_type in (FileType.UNK, FileType.EMPTY, FileType.ZIP, FileType.WAV):
        raise UnsupportedFileError(f"unsupported file type ({file_type.name.lower()})")
    if not file_type.is_partitionable:
        raise UnsupportedFileError(f"unsupported file type ({file_type.name.lower()})")
    return str(file_type.name)


def parse_file(
    path: str | Path, settings: ParsingSettings, roots: Sequence[str] | None = None
) -> ParsedDocument:
    """Parse ``path``; errors are returned in the document, never raised. With ``roots``,
    only a file that lies under one of them when it is opened is read."""
    started = time.perf_counter()
    # Confined, the path is taken as named: resolving it now would follow a swapped link.
    file_path = Path(os.path.abspath(path)) if roots is not None else Path(path).resolve()
    document = ParsedDocument(source=str(file_path), content_hash="", size_bytes=0, file_type="")
    try:
        with open_file(file_path, roots) as opened:
            document.size_bytes = opened.size
            document.content_hash = opened.sha256()  # identifies even a refused file
            _check_size(document.size_bytes, settings)
            document.file_type = detect_file_type(opened.path, opened.confined)
            if document.file_type == "TXT" and opened.size > settings.stream_text_mb * 2**20:
                document.elements = list(stream_text(opened.path))
            else:
                document.elements = _partition(
                    opened.path, document.file_type, settings, opened.confined
                )
        if not any(element.text.strip() for element in document.elements):
            raise ValueError("no text extracted (blank, image-only without OCR text, or empty)")
    except Exception as exc:  # per-file isolation: a bad file must never stop the batch
        document.elements = []
        document.error = describe_error(exc)
    document.parse_seconds = time.perf_counter() - started
    return document


def describe_error(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or _near_memory_limit():
        return "ran out of memory while parsing (the limit is parsing.worker_memory_mb)"
    if isinstance(exc, UnsupportedFileError | ValueError) and message:
        return message[:300]
    if "password" in message.lower() or "encrypt" in message.lower() or "Password" in name:
        return f"encrypted or password-protected ({name})"
    return f"parser error: {name}: {message}"[:300] if message else f"parser error: {name}"


def _near_memory_limit() -> bool:
    """This process came close to its heap limit: a parser that then fails (libxml2
    says only "unknown error") most likely failed to allocate."""
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if limit == resource.RLIM_INFINITY:
        return False
    return peak_rss_bytes() >= 0.8 * limit


def peak_rss_bytes() -> int:
    """This process's own peak RSS. Not ru_maxrss: a spawned worker inherits its parent's
    (a server of 1 GB made every failure of a worker "out of memory"); VmHWM belongs to
    the process's own address space, new at exec."""
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _check_size(size_bytes: int, settings: ParsingSettings) -> None:
    if size_bytes == 0:
        raise ValueError("empty file (0 bytes)")
    limit = settings.max_file_mb * 1024 * 1024
    if size_bytes > limit:
        raise ValueError(
            f"file too large ({size_bytes / 2**20:.1f} MiB > {settings.max_file_mb} MiB)"
        )


def _partition(
    path: Path, file_type: str, settings: ParsingSettings, confined: bool = False
) -> list[Element]:
    use_packaged_spacy_model()
    from unstructured.file_utils.model import FileType
    from unstructured.partition.auto import partition

    languages = [settings.ocr_languages]
    kwargs: dict[str, Any] = {"languages": languages}
    if confined:  # the type is known: partition() must not detect it by path again
        kwargs["content_type"] = FileType[file_type].mime_type
    if file_type == "PDF":
        kwargs["strategy"] = settings.pdf_strategy
    elif file_type in _OCR_TYPES:
        kwargs["strategy"] = "ocr_only"  # hi_res needs hub layout models
    if file_type == "PDF" and _pdf_is_encrypted(path):
        raise ValueError("encrypted or password-protected PDF")
    if file_type in _DELIMITED_TYPES and (encoding := _bom_encoding(path)):
        kwargs["encoding"] = encoding  # the CSV reader assumes UTF-8 and ignores BOMs
    try:
        raw = partition(filename=str(path), **kwargs)
    except Exception:
        if file_type in _EMAIL_TYPES:
            # An attachment we cannot parse (audio, say) must not cost us the message body.
            raw = partition(filename=str(path), process_attachments=False, **kwargs)
        elif file_type in _DELIMITED_TYPES:
            # Ragged rows defeat the table reader; the text is still worth indexing.
            from unstructured.partition.text import partition_text

            raw = partition_text(filename=str(path), encoding=kwargs.get("encoding"))
        else:
            raise
    elements = list(convert_elements(raw))
    no_text = not any(element.text.strip() for element in elements)
    if (
        no_text
        and file_type == "PDF"
        and settings.ocr_fallback
        and settings.pdf_strategy != "ocr_only"
    ):
        # A scanned PDF has no text layer: OCR it with tesseract.
        raw = partition(
            filename=str(path),
            strategy="ocr_only",
            languages=languages,
            content_type=kwargs.get("content_type"),
        )
        elements = list(convert_elements(raw))
    return elements


def _pdf_is_encrypted(path: Path) -> bool:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        # An owner-password-only PDF opens with the empty user password: still readable.
        return bool(reader.is_encrypted) and not reader.decrypt("")
    except (PdfReadError, ValueError, OSError):
        return False  # let the parser report what is wrong with it


def _bom_encoding(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(4)
    return next((encoding for bom, encoding in _BOMS if head.startswith(bom)), None)


def convert_elements(raw_elements: Iterable[Any]) -> Iterable[Element]:
    """Map unstructured elements to ours, tracking the heading path as we go."""
    heading_stack: list[str] = []
    for raw in raw_elements:
        category = str(getattr(raw, "category", "Text"))
        if category in _DROPPED_CATEGORIES:
            continue
        metadata = raw.metadata
        text = (raw.text or "").strip()
        table_html = getattr(metadata, "text_as_html", None) if category == "Table" else None
        if not text and not table_html:
            continue
        if category == "Title":
            depth = getattr(metadata, "category_depth", None) or 0
            heading_stack = [*heading_stack[:depth], text[:200]]
            headings = tuple(heading_stack[:-1])
        else:
            headings = tuple(heading_stack)
        yield Element(
            text=text,
            category=category,
            page=getattr(metadata, "page_number", None),
            sheet=getattr(metadata, "page_name", None),
            headings=headings,
            table_html=table_html,
        )
