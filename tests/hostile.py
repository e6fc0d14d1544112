"""Hostile files, made on the spot: small on disk, huge (or deep) once opened."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

MiB = 2**20


def zip_bomb(path: Path, members: int = 4, member_mib: int = 256) -> Path:
    """A .zip of ``members`` members of zeros, each ``member_mib`` MiB unpacked (~1 MB)."""
    block = b"\0" * MiB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for n in range(members):
            with z.open(f"zeros-{n}.txt", "w", force_zip64=True) as out:
                for _ in range(member_mib):
                    out.write(block)
    return path


_PACKAGE = "http://schemas.openxmlformats.org/package/2006"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _ooxml(
    path: Path, main_part: str, types: dict[str, str], parts: dict[str, bytes | list[bytes]]
) -> Path:
    """An OOXML package: content types (``types``: part -> type), the root relationship
    to ``main_part``, and ``parts`` (a list of byte strings is written piece by piece: a
    huge part never sits in memory)."""
    overrides = "".join(
        f'<Override PartName="/{part}" ContentType="{kind}"/>' for part, kind in types.items()
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(
            "[Content_Types].xml",
            f'<Types xmlns="{_PACKAGE}/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>',
        )
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{_PACKAGE}/relationships"><Relationship Id="rId1" '
            f'Type="{_RELS}/officeDocument" Target="{main_part}"/></Relationships>',
        )
        for name, content in parts.items():
            with z.open(name, "w", force_zip64=True) as out:
                for piece in [content] if isinstance(content, bytes) else content:
                    out.write(piece)
    return path


def docx_text_bomb(path: Path, mib: int = 300) -> Path:
    """A DOCX whose one paragraph holds ``mib`` MiB of letters (~1 MB on disk)."""
    word = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    body = [f'<w:document xmlns:w="{word}"><w:body><w:p><w:r><w:t>'.encode()]
    body += [b"a" * MiB] * mib
    body.append(b"</w:t></w:r></w:p></w:body></w:document>")
    part = "word/document.xml"
    return _ooxml(path, part, {part: main}, {part: body})


def xlsx_cell_bomb(path: Path, rows: int = 1_000_000, columns: int = 10) -> Path:
    """An XLSX of ``rows`` x ``columns`` numeric cells (a few MB on disk)."""
    sheet_ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    workbook = (
        f'<workbook xmlns="{sheet_ns}" xmlns:r="{_RELS}"><sheets>'
        '<sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ).encode()
    rels = (
        f'<Relationships xmlns="{_PACKAGE}/relationships"><Relationship Id="rId1" '
        f'Type="{_RELS}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ).encode()
    row = "".join(f"<c><v>{c}</v></c>" for c in range(columns)).encode()
    data = [f'<worksheet xmlns="{sheet_ns}"><sheetData>'.encode()]
    data += [b"<row>" + row + b"</row>"] * rows
    data.append(b"</sheetData></worksheet>")
    types = {"xl/workbook.xml": main, "xl/worksheets/sheet1.xml": sheet}
    parts: dict[str, bytes | list[bytes]] = {
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": rels,
        "xl/worksheets/sheet1.xml": data,
    }
    return _ooxml(path, "xl/workbook.xml", types, parts)


def billion_laughs(path: Path, levels: int = 10) -> Path:
    """XML (or HTML) whose entities nest ``levels`` deep, 10 each: 10**levels "lol"s."""
    entities = ['<!ENTITY lol0 "lol">']
    for n in range(1, levels):
        entities.append(f'<!ENTITY lol{n} "' + f"&lol{n - 1};" * 10 + '">')
    doctype = "<!DOCTYPE lolz [\n" + "\n".join(entities) + "\n]>\n"
    if path.suffix == ".html":
        path.write_text(
            doctype + f"<html><body><p>Laughs: &lol{levels - 1};</p>"
            "<p>A small paragraph after the laughs.</p></body></html>\n"
        )
    else:
        path.write_text(f'<?xml version="1.0"?>\n{doctype}<lolz>&lol{levels - 1};</lolz>\n')
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 60_000) -> Path:
    """A 1-bit greyscale PNG of ``side`` x ``side`` pixels (3.6 G pixels; ~0.5 MB)."""
    row = b"\0" + b"\0" * ((side + 7) // 8)  # filter byte, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def nested_email(path: Path, depth: int = 5000) -> Path:
    """An .eml whose body is a message/rfc822 part holding another, ``depth`` deep."""
    parts = []
    for level in range(depth):
        parts.append(
            f"From: level{level}@example.com\nTo: next@example.com\nSubject: level {level}\n"
            "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
        )
    parts.append(
        "From: last@example.com\nTo: you@example.com\nSubject: the bottom\n"
        "Content-Type: text/plain\n\nThe innermost message says hello.\n"
    )
    path.write_text("".join(parts))
    return path
