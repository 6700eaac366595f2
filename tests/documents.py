"""Small real documents for tests: images and PDFs that the upload rules decode."""

from __future__ import annotations

from functools import cache
from io import BytesIO

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject


def image_of_size(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    out = BytesIO()
    Image.new("L" if max(size) > 4096 else "RGB", size, 120).save(out, image_format)
    return out.getvalue()


@cache
def jpeg() -> bytes:
    return image_of_size("JPEG")


@cache
def png() -> bytes:
    return image_of_size("PNG")


@cache
def pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    return _written(writer)


def _script() -> DictionaryObject:
    return DictionaryObject(
        {
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert(1)"),
        }
    )


def pdf_with_script(where: str) -> bytes:
    """A one-page PDF that runs JavaScript on opening: as a named script or the open action."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    script = writer._add_object(_script())
    if where == "names":
        tree = DictionaryObject(
            {NameObject("/Names"): ArrayObject([TextStringObject("x"), script])}
        )
        names = DictionaryObject({NameObject("/JavaScript"): writer._add_object(tree)})
        writer._root_object[NameObject("/Names")] = writer._add_object(names)
    else:
        writer._root_object[NameObject("/OpenAction")] = script
    return _written(writer)


def _written(writer: PdfWriter) -> bytes:
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
