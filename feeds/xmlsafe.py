"""Hardened XML parsing for everything the feeds read (CAP, Atom, RSS, GDACS).

Inbound XML is hostile until proven otherwise. Two layers, defusedxml-style:

1. **Refuse before parsing** any document that declares a DOCTYPE or ENTITY (external entities,
   parameter entities, "billion laughs" expansion all need one), or carries a processing
   instruction other than the harmless ``xml-stylesheet`` (which is ignored, never fetched).
   The scan runs on the decoded text, so UTF-16 or ISO-8859-1 documents cannot hide a DOCTYPE.
2. **Parse with a locked-down lxml parser**: ``resolve_entities=False, no_network=True,
   load_dtd=False, huge_tree=False``, no XInclude processing, no schema locations followed.

Nothing is ever fetched or read from disk while parsing. A refusal raises :class:`UnsafeXMLError`.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from feeds.model import FeedFormatError

_PI = re.compile(r"<\?([A-Za-z_][\w.\-]*)")
_DECL = re.compile(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
ALLOWED_PIS = frozenset({"xml", "xml-stylesheet"})


class UnsafeXMLError(FeedFormatError):
    """The document tries something a feed never needs (DTD, entities, odd PIs)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=False,
    )


def _scan_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    if data[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        return data.decode("utf-16-le" if data[0] == 0x3C else "utf-16-be", "replace")
    m = _XML_DECL_ENCODING.match(data[3:] if data.startswith(codecs.BOM_UTF8) else data)
    encoding = m.group(1).decode("ascii") if m else "utf-8"
    try:
        return data.decode(encoding, "replace")
    except LookupError:
        return data.decode("latin-1")


def check_safe(data: bytes) -> None:
    """Raise :class:`UnsafeXMLError` when ``data`` declares a DTD/entities or an unknown PI."""
    text = _scan_text(data)
    decl = _DECL.search(text)
    if decl:
        raise UnsafeXMLError(f"refused: document declares <!{decl.group(1).upper()} (DTD/entities are not allowed)")
    for m in _PI.finditer(text):
        if m.group(1).lower() not in ALLOWED_PIS:
            raise UnsafeXMLError(f"refused: processing instruction <?{m.group(1)} is not allowed")


def parse_xml(data: bytes) -> etree._Element:
    """Check, then parse ``data`` with the hardened parser; returns the root element.

    A UTF-8 BOM is fine; the encoding declaration (e.g. ISO-8859-1) is honoured.
    Raises :class:`UnsafeXMLError` or :class:`FeedFormatError` (malformed XML).
    """
    check_safe(data)
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise FeedFormatError(f"malformed XML: {exc}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise UnsafeXMLError("refused: document has a DOCTYPE")
    return root


def local(tag: object) -> str:
    """Local name of an element tag (``{ns}name`` → ``name``); '' for comments/PIs."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def child(el: etree._Element, name: str) -> etree._Element | None:
    """First child with local name ``name`` (any namespace)."""
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def children(el: etree._Element, name: str) -> list[etree._Element]:
    """All children with local name ``name`` (any namespace)."""
    return [c for c in el if local(c.tag) == name]


def text(el: etree._Element, name: str) -> str | None:
    """Stripped text of the first child named ``name``; None when absent or empty."""
    c = child(el, name)
    if c is None or c.text is None:
        return None
    value = c.text.strip()
    return value or None
