"""Schema validation of CAP 1.1/1.2 alerts against the XSDs shipped in ``feeds/schemas/``.

The XSDs are sitrep's own, written from the OASIS CAP specification's data dictionary; they
are part of the package, so validation works in any clone. The XSD is chosen by the
``alert`` element's namespace.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from lxml import etree

CAP_NAMESPACES = {
    "urn:oasis:names:tc:emergency:cap:1.2": "cap-1.2.xsd",
    "urn:oasis:names:tc:emergency:cap:1.1": "cap-1.1.xsd",
}


@cache
def schema_for(namespace: str) -> etree.XMLSchema | None:
    """The compiled XSD for a CAP namespace, or None for an unknown namespace."""
    name = CAP_NAMESPACES.get(namespace)
    if name is None:
        return None
    data = resources.files("feeds.schemas").joinpath(name).read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(data, parser=parser))


def validate_cap(doc: etree._Element) -> list[str]:
    """Validate one ``<alert>`` element; returns readable problems (empty when valid).

    The element is copied into its own document first, so an alert embedded in an Atom entry
    validates like a standalone one.
    """
    tag = doc.tag if isinstance(doc.tag, str) else ""
    namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
    schema = schema_for(namespace)
    if schema is None:
        return [f"not a CAP 1.1/1.2 alert (namespace {namespace!r})"]
    standalone = etree.fromstring(etree.tostring(doc))
    if schema.validate(standalone):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
