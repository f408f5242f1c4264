from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import pytest
from lxml import etree
from shapely.geometry import Point, shape

from feeds import cap
from feeds.capschema import validate_cap
from feeds.model import FeedFormatError
from feeds.xmlsafe import UnsafeXMLError, parse_xml
from tests.feeds.support import SAMPLES, sample_bytes

VALID_ALERTS = [
    "cap/googlecaplib_australia.cap",
    "cap/googlecaplib_canada.cap",
    "cap/googlecaplib_earthquake-iso8859-1.cap",
    "cap/googlecaplib_earthquake.cap",
    "cap/googlecaplib_hsas_43b080713727_spec_example.cap",
    "cap/googlecaplib_thunderstorm_KSTO_spec_example.cap",
    "cap/googlecaplib_wcatwc-warning.cap",
    "cap/googlecaplib_weather.cap",
    "cap/nws_legacy_cap11_SVR_BOX_2021-12-11.xml",
]


def _alerts(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str) and e.tag.rsplit("}", 1)[-1] == "alert"]


@pytest.mark.parametrize("rel", VALID_ALERTS)
def test_valid_samples_pass_our_xsd_and_become_hazards(rel: str) -> None:
    data = sample_bytes(rel)
    assert validate_cap(parse_xml(data)) == []
    result = cap.parse(data)
    assert result.errors == [] and len(result.items) == 1
    item = result.items[0]
    assert item.source == "cap" and item.version and item.valid_from is not None


def test_our_xsd_agrees_with_the_oasis_xsd_on_every_sample(samples: object) -> None:
    oasis = {v: etree.XMLSchema(etree.parse(str(SAMPLES / "schemas" / f"CAP-v{v}.xsd"))) for v in ("1.1", "1.2")}
    checked = 0
    for path in sorted((SAMPLES / "cap").iterdir()):
        if path.suffix == ".yaml" or "xee" in path.name:
            continue
        for alert in _alerts(parse_xml(path.read_bytes())):
            version = alert.tag[1:].split("}")[0].rsplit(":", 1)[-1]
            theirs = oasis[version].validate(etree.fromstring(etree.tostring(alert)))
            ours = validate_cap(alert) == []
            assert ours == theirs, path.name
            checked += 1
    assert checked >= 12


def test_schema_invalid_cap_is_an_item_error_and_skipped() -> None:
    result = cap.parse(sample_bytes("cap/googlecaplib_noaa_errors.cap"))
    assert result.items == []
    (error,) = result.errors
    assert error.external_id and error.external_id.startswith("NOAA-NWS-ALERTS-NV")
    assert "schema-invalid" in error.reason
    with pytest.raises(FeedFormatError, match="schema-invalid"):
        cap.parse_cap_alert(sample_bytes("cap/googlecaplib_noaa_errors.cap"))


def test_xxe_payload_is_refused_without_touching_network_or_disk() -> None:
    data = sample_bytes("cap/googlecaplib_xee.cap")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    hostile = data.replace(b"localhost:8080", f"127.0.0.1:{port}".encode())
    connections: list[object] = []

    def accept() -> None:
        try:
            connections.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    with pytest.raises(UnsafeXMLError, match="DOCTYPE"):
        cap.parse(hostile)
    with pytest.raises(UnsafeXMLError):
        cap.parse_cap_alert(hostile)
    thread.join()
    listener.close()
    assert connections == []


@pytest.mark.parametrize(
    "doc",
    [
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "x"><!ENTITY c "&b;&b;">]><a>&c;</a>',
        b'<?xml version="1.0"?><?xml-evil run="1"?><alert/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>'.encode("utf-16"),
    ],
)
def test_entity_expansion_odd_pis_and_utf16_doctypes_are_refused(doc: bytes) -> None:
    with pytest.raises(UnsafeXMLError):
        parse_xml(doc)


def test_canada_update_bilingual_four_polygons_and_references() -> None:
    alert = cap.parse_cap_alert(sample_bytes("cap/googlecaplib_canada.cap"))
    assert alert.msg_type == "Update" and alert.version == "1.2"
    assert [i.language for i in alert.infos] == ["en-CA", "fr-CA"]
    assert len(alert.references) == 2 and alert.references[0].sender == "cap@ec.gc.ca"
    assert sum(len(a.polygons) for a in alert.areas) == 4  # two per language
    (item,) = cap.parse(sample_bytes("cap/googlecaplib_canada.cap")).items
    assert item.references == [r.identifier for r in alert.references]
    assert item.raw["languages"] == ["en-CA", "fr-CA"]
    assert item.geometry is not None and shape(item.geometry).is_valid
    assert sum(len(v) for v in item.geocodes.values()) >= 13


def test_prefixed_namespace_australia_polygon_is_lon_lat() -> None:
    (item,) = cap.parse(sample_bytes("cap/googlecaplib_australia.cap")).items
    minx, miny, maxx, maxy = shape(item.geometry).bounds
    assert 140 < minx < maxx < 155 and -38 < miny < maxy < -28  # NSW: lon east, lat south


def test_iso_8859_1_zero_radius_circle_gets_minimum_and_a_note() -> None:
    (item,) = cap.parse(sample_bytes("cap/googlecaplib_earthquake-iso8859-1.cap")).items
    assert item.geometry is not None
    circle = shape(item.geometry)
    assert circle.contains(Point(-88.783, 12.747))
    assert any("radius 0.0 km" in n for n in item.raw["notes"])


def test_thunderstorm_polygon_lat_lon_swapped_and_geocodes_kept() -> None:
    (item,) = cap.parse(sample_bytes("cap/googlecaplib_thunderstorm_KSTO_spec_example.cap")).items
    assert shape(item.geometry).contains(Point(-119.95, 38.47))
    assert item.geocodes == {"SAME": ["006109", "006009", "006003"]}
    assert item.severity == "severe" and item.status == "expired"


def test_tsunami_update_references_and_cap11_nws_legacy() -> None:
    (tsu,) = cap.parse(sample_bytes("cap/googlecaplib_wcatwc-warning.cap")).items
    assert tsu.references == ["PAAQ-1-lqw6d6"] and tsu.geometry is None and tsu.geocodes["UGC"]
    (svr,) = cap.parse(sample_bytes("cap/nws_legacy_cap11_SVR_BOX_2021-12-11.xml")).items
    assert svr.raw["capVersion"] == "1.1" and svr.geometry is not None
    assert "&lt;" not in svr.description and "<" in svr.description  # the entity is decoded, once


def test_no_area_spec_example_and_active_without_expiry() -> None:
    (item,) = cap.parse(sample_bytes("cap/googlecaplib_hsas_43b080713727_spec_example.cap")).items
    assert item.geometry is None and item.status == "active" and item.valid_until is None


def test_meteoalarm_atom_entries_with_emma_id_and_message_type() -> None:
    now = datetime(2023, 4, 27, 13, 0, tzinfo=UTC)
    result = cap.parse(sample_bytes("cap/meteoalarm_legacy_atom_poland_2023-04-28.xml"), now=now)
    assert result.errors == []
    assert len(result.items) == len(result.follow) > 0
    for item in result.items:
        assert item.geometry is None and list(item.geocodes) == ["EMMA_ID"]
        assert item.raw["msgType"] == "Alert" and item.raw["provisional"]
        assert item.external_id.startswith("2.49.0.0.616.0.PL.")
        assert item.status == "active"
    assert all(f.url.startswith("https://feeds.meteoalarm.org/api/v1/warnings/") for f in result.follow)


def test_nws_atom_index_has_provisional_items_and_links() -> None:
    result = cap.parse(sample_bytes("cap/googlecaplib_weather_index.atom"))
    assert len(result.items) == 2 and len(result.follow) == 2
    assert result.items[0].geocodes["FIPS6"] == ["009007", "009009", "009011", "044009"]


def test_atom_entry_embedding_a_full_cap_alert() -> None:
    result = cap.parse(sample_bytes("cap/googlecaplib_weather.atom"))
    (item,) = result.items
    assert item.raw["capVersion"] == "1.1" and "provisional" not in item.raw


def test_atom_with_no_entries_reads_the_foreign_alert_and_reports_its_schema_error() -> None:
    result = cap.parse(sample_bytes("cap/googlecaplib_no_entries.atom"))
    assert result.items == [] and result.follow == []
    (error,) = result.errors
    assert error.external_id == "9227922014-06-17T09:35:35+09:30"
    assert "incidents" in error.reason  # <incidents> before <status>: wrong element order


def test_rss_index_and_usgs_atom_give_follow_links() -> None:
    rss = cap.parse(sample_bytes("cap/googlecaplib_ny_index.rss"))
    assert [f.external_id for f in rss.follow] == ["NYAlert-ALLHAZALERT-3167113", "NYAlert-ALLHAZALERT-3162202"]
    quake = cap.parse(sample_bytes("cap/googlecaplib_earthquake_index.atom"))
    assert [f.url for f in quake.follow] == ["http://earthquake.usgs.gov/earthquakes/catalogs/cap/us2010apcd"]


def test_parse_cap_alert_reads_all_fields() -> None:
    alert = cap.parse_cap_alert(sample_bytes("cap/googlecaplib_thunderstorm_KSTO_spec_example.cap"))
    assert (alert.identifier, alert.sender, alert.status, alert.msg_type, alert.scope) == (
        "KSTO1055887203", "KSTO@NWS.NOAA.GOV", "Actual", "Alert", "Public")  # fmt: skip
    assert alert.sent == datetime(2003, 6, 17, 21, 57, tzinfo=UTC)
    info = alert.infos[0]
    assert info.event == "SEVERE THUNDERSTORM" and info.categories == ["Met"] and info.response_types == ["Shelter"]
    assert info.event_codes[0].value_name == "SAME" and info.event_codes[0].value == "SVR"
    assert len(alert.areas) == 1 and alert.areas[0].geocodes[0].value == "006109"


def test_round_trip_of_a_cap_we_write() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>sitrep-1</identifier><sender>ops@example.org</sender>
<sent>2026-01-01T12:00:00+00:00</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>
<references>ops@example.org,sitrep-0,2026-01-01T11:00:00+00:00</references>
<info><category>Safety</category><event>Evacuation</event><urgency>Immediate</urgency><severity>Extreme</severity>
<certainty>Observed</certainty><area><areaDesc>Zone</areaDesc><polygon>10,20 10,21 11,21 11,20 10,20</polygon>
<circle>10.5,20.5 2.5</circle></area></info></alert>"""
    alert = cap.parse_cap_alert(xml)
    assert alert.references[0].identifier == "sitrep-0"
    assert alert.areas[0].polygons == ["10,20 10,21 11,21 11,20 10,20"] and alert.areas[0].circles == ["10.5,20.5 2.5"]
    (item,) = cap.parse(xml).items
    assert item.status == "cancelled" and item.references == ["sitrep-0"]
    assert shape(item.geometry).contains(Point(20.5, 10.5))


def test_ack_and_test_messages_are_not_hazards() -> None:
    base = sample_bytes("cap/googlecaplib_thunderstorm_KSTO_spec_example.cap")
    ack = cap.parse(base.replace(b"<msgType>Alert</msgType>", b"<msgType>Ack</msgType>"))
    test = cap.parse(base.replace(b"<status>Actual</status>", b"<status>Test</status>"))
    assert ack.items == [] and "Ack" in ack.errors[0].reason
    assert test.items == [] and "Test" in test.errors[0].reason
