"""Page counts of the documents attached to a request, read from their bytes (pure, standard library).

The planner estimates a document's prompt tokens as pages × a per-page figure (``cascade.tokens``), for
context fit and the worst-case budget reservation, so a count here errs high, never low, and is never
below one page:

- PDF: the page objects (``/Type /Page``; ``/Pages`` tree nodes are not pages), those packed in
  compressed object streams included, each object number once (an incremental update that rewrites a
  page does not add one), or the page tree's ``/Count`` where that is larger;
- TIFF: the images (IFDs) of the file, multi-page scans included;
- anything else (PNG, JPEG, unreadable or encrypted bytes) and a document given without its bytes (a
  file id, a URL): one page.
"""
from __future__ import annotations

import base64
import re
import struct
import urllib.parse
import zlib

MAX_PAGES = 100_000                         # a cap on any count: far beyond every context window already
MAX_INFLATED_BYTES = 64 * 1024 * 1024       # per document: compressed object streams beyond this are not read
_DELIM = rb"(?=[\s()<>\[\]{}/%]|$)"           # where a PDF name ends
_OBJ_KEYWORD = re.compile(rb"(?<=\s)obj" + _DELIM)      # found first: a scan for digits is 20x slower
_OBJECT_NUMBER = re.compile(rb"(\d+)\s+\d+\s+$")        # "12 0 " before the keyword
_PAGE = re.compile(rb"/Type\s*/Page" + _DELIM)
_PAGES = re.compile(rb"/Type\s*/Pages" + _DELIM)
_DIRECT = _DELIM + rb"(?!\s+\d+\s+R" + _DELIM + rb")"     # an integer, not an "N G R" reference
_COUNT = re.compile(rb"/Count\s+(\d+)" + _DIRECT)
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm" + _DELIM)
_STREAM = re.compile(rb">>\s*stream(?:\r\n|\n|\r)")
_FLATE = re.compile(rb"/Filter\s*\[?\s*/FlateDecode\s*\]?" + _DELIM)
_INT_KEY = {key: re.compile(rb"/" + key + rb"\s+(\d+)" + _DIRECT) for key in (b"N", b"First", b"Length")}


def document_pages(payload: str | None) -> int:
    """Pages of a document given as a data URI or bare base64 (``None``: given by reference): >= 1."""
    data = _payload_bytes(payload) if payload else None
    if not data:
        return 1
    if b"%PDF-" in data[:1024]:
        return min(pdf_pages(data), MAX_PAGES)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return tiff_pages(data)
    return 1


def _payload_bytes(payload: str) -> bytes | None:
    if payload.startswith("data:"):
        header, sep, body = payload[5:].partition(",")
        if not sep:
            return None
        if "base64" not in (p.strip().lower() for p in header.split(";")[1:]):
            return urllib.parse.unquote_to_bytes(body)
        payload = body
    elif "://" in payload[:16]:          # a URL, not the document's bytes
        return None
    compact = "".join(payload.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4))
    except ValueError:                   # binascii.Error, or non-ASCII text: not base64
        return None


# ---- PDF ------------------------------------------------------------------------------------------------

def pdf_pages(data: bytes) -> int:
    """Distinct page objects (object streams included) or the page tree's largest ``/Count``: >= 1."""
    is_page: dict[int, bool] = {}       # object number -> whether its latest definition is a page
    counts = [0]
    inflate_left = MAX_INFLATED_BYTES
    headers = _object_headers(data)
    for i, (number, _, start) in enumerate(headers):
        body = data[start:headers[i + 1][1] if i + 1 < len(headers) else len(data)]
        stream = _STREAM.search(body)
        head = body[:stream.start() + 2] if stream else body
        if stream and _OBJECT_STREAM.search(head):
            inflated = _inflate(head, body[stream.end():], inflate_left)
            inflate_left -= len(inflated or b"")
            for packed_number, packed in _packed_objects(head, inflated or b""):
                _classify(packed_number, packed, is_page, counts)
        _classify(number, head, is_page, counts)
    pages = sum(is_page.values()) if headers else len(_PAGE.findall(data))
    return max(pages, max(counts), 1)


def _object_headers(data: bytes) -> list[tuple[int, int, int]]:
    """(object number, where ``N G obj`` starts, where the body starts) of each object, in file order."""
    headers = []
    for keyword in _OBJ_KEYWORD.finditer(data):
        number = _OBJECT_NUMBER.search(data, max(0, keyword.start() - 48), keyword.start())
        if number:
            headers.append((int(number.group(1)), number.start(), keyword.end()))
    return headers


def _classify(number: int, head: bytes, is_page: dict[int, bool], counts: list[int]) -> None:
    is_page[number] = bool(_PAGE.search(head))
    if _PAGES.search(head):
        counts.extend(int(c) for c in _COUNT.findall(head))


def _inflate(head: bytes, raw: bytes, limit: int) -> bytes | None:
    """The decoded bytes (at most ``limit``) of an unfiltered or Flate stream; None for other filters."""
    length = _int_key(head, b"Length")
    if length is not None and length <= len(raw):
        raw = raw[:length]
    if b"/Filter" not in head:
        return raw[:limit]
    if limit <= 0 or not _FLATE.search(head) or b"/DecodeParms" in head:
        return None
    try:
        return zlib.decompressobj().decompress(raw, limit)
    except zlib.error:                  # encrypted or damaged: its objects stay unread
        return None


def _packed_objects(head: bytes, inflated: bytes) -> list[tuple[int, bytes]]:
    """The objects of one decoded object stream (``/Type /ObjStm``), as (number, text) pairs."""
    n, first = _int_key(head, b"N"), _int_key(head, b"First")
    if n is None or first is None:
        return []
    numbers = [int(x) for x in inflated[:first].split()[:2 * n] if x.isdigit()]
    pairs = list(zip(numbers[::2], numbers[1::2]))
    objects = []
    for j, (number, offset) in enumerate(pairs):
        stop = first + pairs[j + 1][1] if j + 1 < len(pairs) else len(inflated)
        objects.append((number, inflated[first + offset:stop]))
    return objects


def _int_key(head: bytes, key: bytes) -> int | None:
    match = _INT_KEY[key].search(head)
    return int(match.group(1)) if match else None


# ---- TIFF -----------------------------------------------------------------------------------------------

def tiff_pages(data: bytes) -> int:
    """The length of the IFD chain of a TIFF or BigTIFF file (a loop or a cut chain ends the walk)."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    offset_fmt, count_fmt, entry_size, first_at = ("Q", "Q", 20, 8) if big else ("I", "H", 12, 4)
    offset_size, count_size = struct.calcsize(order + offset_fmt), struct.calcsize(order + count_fmt)
    if len(data) < first_at + offset_size:
        return 1
    offset = struct.unpack_from(order + offset_fmt, data, first_at)[0]
    pages, seen = 0, set()
    while offset and offset not in seen and offset + count_size <= len(data) and pages < MAX_PAGES:
        seen.add(offset)
        pages += 1
        entries = struct.unpack_from(order + count_fmt, data, offset)[0]
        next_at = offset + count_size + entries * entry_size
        if next_at + offset_size > len(data):
            break
        offset = struct.unpack_from(order + offset_fmt, data, next_at)[0]
    return max(pages, 1)
