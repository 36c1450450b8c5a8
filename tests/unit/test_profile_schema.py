"""Profile files: the bundled ones load; a bad one is refused naming the file, the point and the reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.profile.catalog import PROFILE_DIR, PROFILES, load_catalog
from drivers.profile.schema import ProfileError, load_profile

MINIMAL: dict[str, Any] = {
    "family": "acme",
    "source": [{"title": "ACME Modbus map", "version": "1.0"}],
    "identity": {"manufacturer": "ACME", "model": "Hybrid", "match_point": "code", "models": {7: "H7"}},
    "points": {
        "code": {"table": "input", "address": 0, "type": "u16"},
        "soc": {"table": "input", "address": 10, "type": "u16", "scale": 0.1},
        "reserve": {"table": "holding", "address": 100, "type": "u16", "access": "rw"},
    },
    "telemetry": {"soc_pct": [{"point": "soc"}]},
    "controls": {"backup_reserve": {"point": "reserve"}},
}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "acme") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def changed(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with the dotted ``path`` set to ``value`` (None deletes it)."""
    doc = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def test_the_minimal_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, MINIMAL))
    assert profile.family == "acme"
    assert profile.control_points() == {"backup_reserve": ("reserve",)}


def test_every_bundled_profile_loads_and_cites_its_vendor_document() -> None:
    assert {"sungrow_sh_rt", "huawei_sun2000"} <= set(PROFILES)
    assert load_catalog(PROFILE_DIR).keys() == PROFILES.keys()
    for profile in PROFILES.values():
        assert all(s.title and s.version for s in profile.source)


@pytest.mark.parametrize(("path", "value", "where", "reason"), [
    ("points.soc.type", "u24", "point soc.type", "Input should be"),
    ("points.soc.address", 70000, "point soc.address", "less than or equal to 65535"),
    ("points.soc.address", 65535, "point soc", "beyond 65535"),  # u16 fits; see next
    ("points.code.address", 10, "point soc", "overlaps point code"),
    ("points.reserve.table", "input", "point reserve", "only holding registers can be written"),
    ("points.reserve.access", "r", "controls.backup_reserve", "read-only"),
    ("points.reserve.access", "w", "controls.backup_reserve", "no read-back point"),
    ("points.soc.words", 2, "point soc", "words is only for str"),
    ("telemetry.soc_pct", [{"point": "nope"}], "telemetry", "point 'nope' is not defined"),
    ("identity.models", None, "identity", "give either models"),
    ("source", [], "source", "at least 1"),
    ("family", "ACME!", "family", "String should match"),
    ("points.soc.colour", "blue", "point soc.colour", "Extra inputs are not permitted"),
])  # fmt: skip
def test_a_bad_profile_is_refused_naming_file_point_and_reason(
    tmp_path: Path, path: str, value: Any, where: str, reason: str
) -> None:
    doc = changed(path, value)
    if value == 65535:  # a u32 at the last address runs past the end
        doc["points"]["soc"]["type"] = "u32"
    with pytest.raises(ProfileError) as raised:
        load_profile(write(tmp_path, doc))
    err = raised.value
    assert (err.file, err.where) == ("acme.yaml", where), str(err)
    assert reason in err.reason
    assert str(err).startswith(f"acme.yaml: {where}: ")


def test_overlapping_points_are_refused(tmp_path: Path) -> None:
    doc = changed("points.wide", {"table": "input", "address": 9, "type": "u32"})
    with pytest.raises(ProfileError, match=r"point soc: overlaps point wide \(input register 10\)"):
        load_profile(write(tmp_path, doc))


def test_a_writable_capability_without_read_back_is_refused(tmp_path: Path) -> None:
    doc = changed("points.cmd", {"table": "holding", "address": 200, "type": "u16", "access": "w"})
    doc["controls"]["grid_charging"] = {"allowed": {"cmd": 1}, "forbidden": {"cmd": 0}}
    with pytest.raises(ProfileError, match=r"controls\.grid_charging: point cmd is write-only"):
        load_profile(write(tmp_path, doc))


def test_the_file_name_is_the_family(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="family: must equal the file name 'other'"):
        load_profile(write(tmp_path, MINIMAL, name="other"))


def test_an_unknown_hook_is_refused_at_load(tmp_path: Path) -> None:
    doc = changed("hooks", [{"name": "teleport"}])
    path = write(tmp_path, doc)
    with pytest.raises(ProfileError, match=r"acme\.yaml: hooks: hook 'teleport' is unknown"):
        load_catalog(path.parent)


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("points: [unclosed", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"acme\.yaml: file: "):
        load_profile(path)


def test_a_write_only_point_with_a_read_back_point_loads(tmp_path: Path) -> None:
    doc = changed("points.cmd", {"table": "holding", "address": 200, "type": "u16", "access": "w"})
    doc["points"]["cmd_state"] = {"table": "holding", "address": 201, "type": "u16"}
    doc["controls"]["grid_charging"] = {"allowed": {"cmd": 1}, "forbidden": {"cmd": 0}}
    doc["read_backs"] = {"cmd": "cmd_state"}
    profile = load_profile(write(tmp_path, doc))
    assert profile.read_back_of("cmd") == "cmd_state"
    doc["read_backs"] = {"cmd": "nowhere"}
    with pytest.raises(ProfileError, match="read_backs: point 'nowhere' is not defined"):
        load_profile(write(tmp_path, doc))


def test_a_config_naming_an_unknown_profile_is_refused_with_the_known_ones() -> None:
    from gateway.core.config import ConfigError, parse_config

    text = """gateway: {jwt_secret: a-secret-that-is-long-enough-0123456789}
sites:
  - energy_site_id: 7
    name: Test
    time_zone: UTC
    devices:
      - name: inverter
        type: profile
        options: {profile: sungrow_sh_rtt, host: 127.0.0.1}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml")
    problem = next(p for p in info.value.problems if "profile" in p)
    assert "sites[0].devices[0].options.profile" in problem
    assert f"unknown profile 'sungrow_sh_rtt'; known: {', '.join(sorted(PROFILES))}" in problem
