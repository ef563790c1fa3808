"""Documents built byte by byte for the page-count tests: PDFs (plain objects or packed in a compressed
object stream, with incremental updates) and TIFF / BigTIFF files with a chain of images."""
from __future__ import annotations

import base64
import struct
import zlib


def data_uri(data: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _tree(pages: int, count: int | None) -> dict[int, bytes]:
    """Catalog (1), page tree (2) and ``pages`` page objects (3...)."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
               2: f"<< /Type /Pages /Kids [{kids}] /Count {pages if count is None else count} >>".encode()}
    for i in range(pages):
        objects[3 + i] = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 99 0 R>>"
    return objects


def pdf_bytes(pages: int, *, object_stream: bool = False, count: int | None = None,
              rewrite_first_page: int = 0) -> bytes:
    """A PDF of ``pages`` pages. ``object_stream``: every object but the content stream is packed in
    one Flate-compressed ``/Type /ObjStm`` (as PDF 1.5+ writers do); ``count`` overrides the page
    tree's ``/Count``; ``rewrite_first_page`` appends that many incremental updates of page 1."""
    objects = _tree(pages, count)
    out = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"]
    if object_stream:
        out.append(_object_stream(100, objects))
    else:
        out += [b"%d 0 obj\n%s\nendobj\n" % (number, body) for number, body in objects.items()]
    content = b"BT /F1 12 Tf 72 720 Td (Hello /Type /Page) Tj ET"
    out.append(b"99 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(content), content))
    out.append(b"trailer\n<< /Root 1 0 R /Size 101 >>\n%%EOF\n")
    for _ in range(rewrite_first_page):
        out.append(b"3 0 obj\n<< /Type /Page /Parent 2 0 R /Rotate 90 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return b"".join(out)


def _object_stream(number: int, objects: dict[int, bytes]) -> bytes:
    offsets, body = [], b""
    for n, text in objects.items():
        offsets.append(b"%d %d" % (n, len(body)))
        body += text + b"\n"
    header = b" ".join(offsets) + b"\n"
    packed = zlib.compress(header + body)
    return (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n%s\n"
            b"endstream\nendobj\n" % (number, len(objects), len(header), len(packed), packed))


def tiff_bytes(pages: int, *, big: bool = False, byte_order: str = "<", loop: bool = False) -> bytes:
    """A TIFF (or BigTIFF) whose chain holds ``pages`` IFDs of one entry each; ``loop`` points the
    last IFD back at the first."""
    o = byte_order
    offset_fmt, count_fmt, entry_size = ("Q", "Q", 20) if big else ("I", "H", 12)
    mark = b"II" if o == "<" else b"MM"
    head = mark + (struct.pack(o + "HHH", 43, 8, 0) if big else struct.pack(o + "H", 42))
    first = len(head) + struct.calcsize(offset_fmt)
    ifd_size = struct.calcsize(count_fmt) + entry_size + struct.calcsize(offset_fmt)
    out = head + struct.pack(o + offset_fmt, first)
    for i in range(pages):
        last = i == pages - 1
        nxt = (first if loop else 0) if last else first + (i + 1) * ifd_size
        out += struct.pack(o + count_fmt, 1) + b"\0" * entry_size + struct.pack(o + offset_fmt, nxt)
    return out
