"""Page counts of attached documents (``policies.documents``): exact for what writers produce, never
below one page, never an exception on bytes that are not what they claim."""
from __future__ import annotations

import base64
import io
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.documents import MAX_PAGES, document_pages, pdf_pages, tiff_pages
from tests.policies.documents import data_uri, pdf_bytes, tiff_bytes


@pytest.mark.parametrize("pages", [1, 2, 7, 40])
@pytest.mark.parametrize("object_stream", [False, True])
def test_pdf_pages_are_its_page_objects(pages, object_stream):
    pdf = pdf_bytes(pages, object_stream=object_stream)
    assert pdf_pages(pdf) == pages
    assert document_pages(data_uri(pdf)) == pages


def test_the_page_tree_node_is_not_a_page():
    pdf = pdf_bytes(3)
    assert pdf.count(b"/Type /Pages") == 1 and pdf_pages(pdf) == 3


def test_page_text_inside_a_content_stream_is_not_a_page():
    pdf = pdf_bytes(1)
    assert b"(Hello /Type /Page)" in pdf and pdf_pages(pdf) == 1


@pytest.mark.parametrize("object_stream", [False, True])
def test_an_incremental_update_of_a_page_does_not_add_one(object_stream):
    assert pdf_pages(pdf_bytes(4, object_stream=object_stream, rewrite_first_page=2)) == 4


def test_a_larger_page_tree_count_wins():
    # pages whose objects cannot be read (e.g. an encrypted object stream) still count through /Count
    assert pdf_pages(pdf_bytes(2, count=9)) == 9
    assert pdf_pages(pdf_bytes(2, object_stream=True, count=9)) == 9


def test_an_unreadable_object_stream_falls_back_to_one_page():
    pdf = pdf_bytes(5, object_stream=True)
    start = pdf.index(b"stream\n") + len(b"stream\n")
    broken = pdf[:start] + bytes(b ^ 0x5A for b in pdf[start:start + 40]) + pdf[start + 40:]
    assert pdf_pages(broken) == 1


def test_a_pdf_from_a_real_writer():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        for i in range(6):
            figure = plt.figure()
            figure.text(0.5, 0.5, f"page {i}")
            pdf.savefig(figure)
            plt.close(figure)
    assert document_pages(data_uri(buffer.getvalue())) == 6


@pytest.mark.parametrize("pages", [1, 3, 12])
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_tiff_pages_are_its_images(pages, big, byte_order):
    tiff = tiff_bytes(pages, big=big, byte_order=byte_order)
    assert tiff_pages(tiff) == pages
    assert document_pages(data_uri(tiff, "image/tiff")) == pages


def test_a_tiff_chain_that_loops_is_walked_once():
    assert tiff_pages(tiff_bytes(3, loop=True)) == 3


def test_a_cut_tiff_chain_counts_what_is_there():
    # 8-byte header, 18-byte IFDs: cutting 20 bytes leaves 3 IFDs, the last without its next pointer
    assert tiff_pages(tiff_bytes(4)[:-20]) == 3


@pytest.mark.parametrize("payload", [
    None,                                                          # a file id: no bytes
    "https://example.com/scan.pdf",                                # a URL: not fetched
    data_uri(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png"),      # an image document
    data_uri(b"\xff\xd8\xff\xe0" + b"\0" * 32, "image/jpeg"),
    data_uri(b"%PDF-1.4\n%fake\n"),                                # a PDF without page objects
    "data:application/pdf;base64,***",                             # not base64
    "data:application/pdf;base64,JVBERi0",                         # unpadded
    "data:application/pdf",                                        # no comma
    "",
])
def test_documents_without_a_readable_page_count_are_one_page(payload):
    assert document_pages(payload) == 1


def test_the_mime_type_is_not_trusted_the_bytes_are():
    pdf = pdf_bytes(3)
    assert document_pages(data_uri(pdf, "application/octet-stream")) == 3
    assert document_pages(base64.b64encode(pdf).decode()) == 3                # bare base64 (no data: prefix)
    assert document_pages(base64.encodebytes(pdf).decode()) == 3              # with line breaks


def test_a_percent_encoded_data_uri():
    text = "%PDF-1.4\n1 0 obj <</Type /Page>> endobj\n2 0 obj <</Type/Page/Parent 3 0 R>> endobj\n"
    assert document_pages("data:application/pdf," + text.replace("%", "%25").replace("\n", "%0A")) == 2


def test_counts_are_capped():
    assert document_pages(data_uri(pdf_bytes(1, count=10 ** 12))) == MAX_PAGES


def test_a_compression_bomb_is_not_inflated_past_the_limit(monkeypatch):
    import policies.documents as documents
    page = b"<< /Type /Page >>"
    packed = zlib.compress(b"1 0 2 5000\n" + page.ljust(5000) + page)    # the second page lies 5,000 bytes in
    pdf = (b"%%PDF-1.5\n5 0 obj\n<< /Type /ObjStm /N 2 /First 11 /Filter /FlateDecode /Length %d >>\nstream\n%s\n"
           b"endstream\nendobj\n" % (len(packed), packed))
    assert pdf_pages(pdf) == 2
    monkeypatch.setattr(documents, "MAX_INFLATED_BYTES", 1000)
    assert pdf_pages(pdf) == 1


def test_the_inflate_limit_covers_all_object_streams_together(monkeypatch):
    import policies.documents as documents

    def object_stream(number: int, page: int) -> bytes:
        packed = zlib.compress(b"%d 0\n<< /Type /Page >>" % page)
        return (b"%d 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length %d >>\nstream\n%s\n"
                b"endstream\nendobj\n" % (number, len(packed), packed))

    pdf = b"%PDF-1.5\n" + object_stream(10, 1) + object_stream(11, 2)
    assert pdf_pages(pdf) == 2
    monkeypatch.setattr(documents, "MAX_INFLATED_BYTES", len(b"1 0\n<< /Type /Page >>"))
    assert pdf_pages(pdf) == 1                   # the first stream used the whole allowance


def test_an_indirect_length_is_not_read_as_a_length():
    pdf = pdf_bytes(5, object_stream=True)
    length = pdf.split(b"/Length ")[1].split(b" ")[0]
    assert pdf_pages(pdf.replace(b"/Length " + length + b" ", b"/Length 7 0 R ", 1)) == 5


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"%PDF-1.7\n", b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]))
def test_any_bytes_give_at_least_one_page(tail, head):
    pages = document_pages(data_uri(head + tail))
    assert 1 <= pages <= MAX_PAGES


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_at_least_one_page(text):
    assert document_pages(text) >= 1
    assert document_pages("data:application/pdf;base64," + text) >= 1
