"""Storm watch, pure: the NWS and MQTT parsers, the counting rule, combining sources, config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from gateway.core.config import Config, SiteConfig, deployment_problems
from gateway.core.config.storm import DEMO_POLL_S, NWS_URL, NwsSource, demo_storm_feed
from gateway.core.storm import (
    DEFAULT_EVENTS,
    MAX_BODY_BYTES,
    MAX_FEATURES,
    FeedError,
    StormAlert,
    StormEpisode,
    active_alerts,
    alerts_from_json,
    alerts_to_json,
    episode_at,
    nws_point,
    parse_mqtt_payload,
    parse_nws,
    primary,
    retry_after_s,
)
from gateway.runtime.storm.nws import backoff_s

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def iso(when: datetime) -> str:
    return when.isoformat()


def feature(**props: Any) -> dict[str, Any]:
    base = {"id": "urn:1", "event": "Tornado Warning", "status": "Actual",
            "messageType": "Alert", "onset": iso(NOW - H), "ends": iso(NOW + H),
            "expires": iso(NOW + H / 2), "severity": "Extreme", "headline": "Take cover"}
    base.update(props)
    return {"type": "Feature", "properties": base}


def body(*features: object) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": list(features)})


COUNTING = [
    ("an actual warning", feature(), 1),
    ("an update counts", feature(messageType="Update"), 1),
    ("a cancel does not", feature(messageType="Cancel"), 0),
    ("a test does not", feature(status="Test"), 0),
    ("an exercise does not", feature(status="Exercise"), 0),
    ("an event outside the set", feature(event="Flood Warning"), 0),
    ("ended", feature(ends=iso(NOW - timedelta(seconds=1))), 0),
    ("ends exactly now", feature(ends=iso(NOW)), 0),
    ("no ends: expires counts", feature(ends=None, expires=iso(NOW + H)), 1),
    ("no ends, expired", feature(ends=None, expires=iso(NOW - H)), 0),
    ("a watch before its onset counts", feature(onset=iso(NOW + 2 * H), ends=iso(NOW + 3 * H)), 1),
]


@pytest.mark.parametrize(("feat", "count"), [(f, c) for _, f, c in COUNTING],
                         ids=[i for i, _, _ in COUNTING])
def test_the_counting_rule(feat: dict[str, Any], count: int) -> None:
    parsed = parse_nws(body(feat), now=NOW, events=DEFAULT_EVENTS)
    assert (len(parsed.alerts), parsed.features, parsed.skipped) == (count, 1, 0)


def test_an_alert_carries_which_from_where_from_when_to_when() -> None:
    (alert,) = parse_nws(body(feature()), now=NOW, events=DEFAULT_EVENTS).alerts
    assert alert == StormAlert(event="Tornado Warning", source="nws", onset=NOW - H, ends=NOW + H,
                               id="urn:1", headline="Take cover", severity="Extreme")


@pytest.mark.parametrize(("raw", "why"), [
    (b"", "not JSON"),
    (b"{not json", "not JSON"),
    (b"[]", "FeatureCollection"),
    (b'{"type": "Feature"}', "FeatureCollection"),
    (b'{"type": "FeatureCollection", "features": {}}', "features"),
    (b" " * (MAX_BODY_BYTES + 1), "exceeds"),
])
def test_an_unusable_answer_is_a_feed_error(raw: bytes, why: str) -> None:
    with pytest.raises(FeedError, match=why):
        parse_nws(raw, now=NOW, events=DEFAULT_EVENTS)


def test_bad_features_are_skipped_and_the_rest_counted() -> None:
    bad = [None, 7, {"properties": "x"}, feature(ends="soon", expires=None),
           feature(ends="2026-06-01T13:00:00", expires=None), feature(ends=None, expires=None)]
    parsed = parse_nws(body(*bad, feature()), now=NOW, events=DEFAULT_EVENTS)
    assert (len(parsed.alerts), parsed.skipped) == (1, len(bad))


def test_features_and_alerts_are_bounded() -> None:
    many = [feature(id=f"urn:{i}") for i in range(MAX_FEATURES + 10)]
    parsed = parse_nws(body(*many), now=NOW, events=DEFAULT_EVENTS)
    assert parsed.skipped == 10
    assert len(parsed.alerts) == 32  # MAX_ALERTS_PER_SOURCE
    long = parse_nws(body(feature(headline="x" * 10_000)), now=NOW, events=DEFAULT_EVENTS)
    assert len(long.alerts[0].headline) == 200


MQTT = [
    (b"true", True, None), (b"ON", True, None), (b" 1\n", True, None), (b"yes", True, None),
    (b"false", False, None), (b"0", False, None), (b"off", False, None), (b"", False, None),
    (b'{"active": false}', False, None),
    (b'{"event": "Hurricane Watch", "duration_s": 3600}', True, NOW + H),
    (b'{"ends": "2026-06-01T14:00:00+00:00"}', True, NOW + 2 * H),
    (b'{"expires": "2026-06-01T14:00:00+00:00"}', True, NOW + 2 * H),
    (b'{"ends": "2026-06-01T11:00:00+00:00"}', False, None),  # already over: clears
    (b"{}", True, None),
]


@pytest.mark.parametrize(("payload", "raised", "ends"), MQTT, ids=[p.decode() or "empty" for p, _, _ in MQTT])
def test_mqtt_payloads(payload: bytes, raised: bool, ends: datetime | None) -> None:
    alert = parse_mqtt_payload(payload, now=NOW, topic="home/storm")
    assert (alert is not None) == raised
    if alert is not None:
        assert (alert.source, alert.id, alert.ends) == ("mqtt", "home/storm", ends)


@pytest.mark.parametrize("payload", [
    b"maybe", b"[true]", b"42.5", b'{"active": "yes"}', b'{"duration_s": -5}',
    b'{"duration_s": true}', b'{"duration_s": 999999999}', b'{"ends": "tomorrow"}',
    b'{"ends": "2026-06-01T14:00:00"}', b'{"ends": "2027-06-01T14:00:00+00:00"}',
    b'{"event": ""}', b'{"event": 5}', b"\xff\xfe", b"x" * 20_000,
])
def test_unusable_mqtt_payloads_are_feed_errors(payload: bytes) -> None:
    with pytest.raises(FeedError):
        parse_mqtt_payload(payload, now=NOW)


def a(source: str, *, onset: datetime | None = None, ends: datetime | None = None,
      event: str = "Tornado Warning") -> StormAlert:
    return StormAlert(event=event, source=source, onset=onset, ends=ends, id=source)


def test_sources_combine_into_the_active_alerts() -> None:
    nws, mqtt, admin = a("nws", onset=NOW, ends=NOW + H), a("mqtt"), a("admin", ends=NOW - H)
    found = active_alerts({"nws": (nws,), "mqtt": (mqtt,), "admin": (admin,)}, NOW)
    assert found == (mqtt, nws)  # no onset first; the admin alert has ended
    assert active_alerts({"nws": (nws,)}, NOW + H) == ()
    assert primary(found) is mqtt  # no end: the last to end
    assert primary((nws, a("admin", ends=NOW + 2 * H))) == a("admin", ends=NOW + 2 * H)
    assert primary(()) is None


def test_alerts_round_trip_their_stored_form() -> None:
    alerts = (a("nws", onset=NOW, ends=NOW + H), a("mqtt"))
    assert alerts_from_json(orjson.loads(orjson.dumps(alerts_to_json(alerts)))) == alerts
    with pytest.raises(FeedError):
        alerts_from_json({"not": "a list"})


def test_the_episode_an_outage_began_in() -> None:
    first = StormEpisode(NOW - 3 * H, NOW - 2 * H, "Wind Advisory", "nws", None, None)
    open_ = StormEpisode(NOW - H, None, "Tornado Warning", "admin", None, NOW + H)
    assert episode_at([first, open_], NOW) is open_
    assert episode_at([first, open_], NOW - 2.5 * H) is first
    assert episode_at([first, open_], NOW - 1.5 * H) is None


@pytest.mark.parametrize(("lat", "lon", "point"), [
    (52.52, 13.4, "52.52,13.4"), (38.123456, -77.0, "38.1235,-77"), (0.0, -0.00001, "0,0"),
])
def test_the_point_has_at_most_four_decimals(lat: float, lon: float, point: str) -> None:
    assert nws_point(lat, lon) == point


@pytest.mark.parametrize(("interval", "failures", "pause"), [
    (300, 0, 300), (300, 1, 600), (300, 2, 1200), (300, 3, 1800), (300, 20, 1800),
    (2, 1, 4), (2, 3, 16), (2, 9, 16), (3600, 5, 3600),
])
def test_the_nws_backoff(interval: float, failures: int, pause: float) -> None:
    assert backoff_s(interval, failures) == pause


def site(**extra: Any) -> dict[str, Any]:
    return {"energy_site_id": 1, "name": "A", "time_zone": "UTC", **extra, "devices": [
        {"name": "inv", "type": "sunspec", "simulated": "home-1/inverter",
         "options": {"host": "127.0.0.1", "port": 1502}}]}


def test_storm_watch_config_defaults_and_checks() -> None:
    config = SiteConfig.model_validate(site(latitude=30, longitude=-90, storm_watch={"nws": {}}))
    nws = config.storm_watch.nws
    assert nws is not None
    assert (nws.base_url, nws.events, config.storm_watch.sources) == (NWS_URL, DEFAULT_EVENTS, ("nws",))
    assert SiteConfig.model_validate(site()).storm_watch.sources == ()
    bad: dict[str, Any]
    for bad in ({"storm_watch": {"nws": {}}},  # no position
                {"latitude": 91, "longitude": 0},
                {"latitude": 0, "longitude": 0, "storm_watch": {"nws": {"base_url": "ftp://x"}}},
                {"latitude": 0, "longitude": 0, "storm_watch": {"nws": {"events": []}}},
                {"storm_watch": {"mqtt": {"topic": "a/#/b"}}},
                {"storm_watch": {"mqtt": {"host": "127.0.0.1"}}},
                {"storm_watch": {"mqtt": {"topic": "t", "password": "pw"}}},  # no username
                {"storm_watch": {"sms": {}}}):
        with pytest.raises(ValidationError):
            SiteConfig.model_validate(site(**bad))
    assert NwsSource(base_url="http://127.0.0.1:1/").base_url == "http://127.0.0.1:1"


def test_the_demo_follows_the_simulated_feed_unless_a_site_names_its_own() -> None:
    own = {"storm_watch": {"mqtt": {"topic": "storm"}}}
    config = Config.model_validate({"gateway": {}, "sites": [
        site(), {**site(**own), "energy_site_id": 2},
        {**site(latitude=1.0, longitude=2.0), "energy_site_id": 3}]})
    demo = demo_storm_feed(config, {"home-1": (52.5, 13.4)}, "http://127.0.0.1:15000")
    first, second, third = demo.sites
    assert first.storm_watch.nws is not None
    assert (first.storm_watch.nws.base_url, first.storm_watch.nws.poll_interval_s) == (
        "http://127.0.0.1:15000", DEMO_POLL_S)
    assert (first.latitude, first.longitude) == (52.5, 13.4)
    assert second == config.sites[1]  # its own source kept
    assert (third.latitude, third.longitude) == (1.0, 2.0)
    assert demo_storm_feed(config, {}, "http://x").sites == config.sites  # not simulated


def test_serving_against_the_real_nws_keeps_its_terms() -> None:
    def problems(nws: dict[str, Any]) -> list[tuple[str, str]]:
        config = Config.model_validate({"gateway": {}, "sites": [
            site(latitude=30, longitude=-90, storm_watch={"nws": nws})]})
        found = deployment_problems(config, purpose="serve", env_secret="s" * 40)
        return [(str(p.loc[-1]), p.severity) for p in found if "storm_watch" in p.loc]

    assert problems({"poll_interval_s": 5}) == [("poll_interval_s", "error"),
                                                ("user_agent", "warning")]
    assert problems({"user_agent": "me (me@example.com)"}) == []
    # a feed of one's own (the simulator, a mirror) sets its own terms
    assert problems({"base_url": "http://127.0.0.1:15000", "poll_interval_s": 1}) == []


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("", None), ("soon", None), ("120", 120.0), (" 7 ", 7.0), ("-5", None),
    ("10000000", 86_400.0),  # a day at most
    ("Mon, 01 Jun 2026 12:02:00 GMT", 120.0), ("Mon, 01 Jun 2026 11:00:00 GMT", 0.0),
])
def test_retry_after_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds
