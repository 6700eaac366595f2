"""Streaming, hardened XML reading shared by the XML list loaders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import iterparse


def local(tag: str) -> str:
    """Tag without its namespace: OFAC changed the sdn.xml namespace over the years."""
    return tag.rsplit("}", 1)[-1]


def iter_records(path: Path, record_tags: frozenset[str]) -> Iterator[Element]:
    """Yield each record element, then detach it so the tree never grows.

    defusedxml refuses entity expansion and external references; iterparse keeps memory flat on
    the multi-megabyte official files.
    """
    stack: list[Element] = []
    with path.open("rb") as handle:
        for event, element in iterparse(handle, events=("start", "end")):
            if event == "start":
                stack.append(element)
                continue
            stack.pop()
            if local(element.tag) in record_tags:
                yield element
                element.clear()
                if stack:
                    stack[-1].remove(element)


def root_tag(path: Path) -> str:
    """Local name of the document element (format sniffing)."""
    with path.open("rb") as handle:
        for _, element in iterparse(handle, events=("start",)):
            return local(element.tag)
    return ""


def child(element: Element, name: str) -> Element | None:
    for node in element:
        if local(node.tag) == name:
            return node
    return None


def children(element: Element, name: str) -> list[Element]:
    return [node for node in element if local(node.tag) == name]


def text(element: Element | None, name: str | None = None) -> str | None:
    """Stripped text of `element` (or of its child `name`); None when empty."""
    node = element if name is None or element is None else child(element, name)
    if node is None or node.text is None:
        return None
    value = " ".join(node.text.split())
    return value or None
