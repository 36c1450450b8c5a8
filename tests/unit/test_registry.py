"""The driver registry: every type name maps to a class whose options model rejects unknown keys."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from drivers.registry import DRIVERS


def test_registry_names_the_device_families() -> None:
    assert sorted(DRIVERS) == ["mqtt_battery", "profile", "sunspec", "victron_gx"]


#: The least each device type needs to be a valid configuration.
MINIMAL_OPTIONS: dict[str, dict[str, Any]] = {
    "sunspec": {"host": "127.0.0.1"},
    "victron_gx": {"host": "127.0.0.1"},
    "mqtt_battery": {"host": "127.0.0.1", "points": {"grid_w": {"state_topic": "meter/grid"}}},
    "profile": {"profile": "sungrow_sh_rt", "host": "127.0.0.1"},
}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_options_models_forbid_unknown_keys(name: str) -> None:
    """The one unknown-keys test of the driver options (valid options plus one unknown key, so
    the unknown key is the only thing that can fail)."""
    model = DRIVERS[name].options_model
    model.model_validate(MINIMAL_OPTIONS[name])
    with pytest.raises(pydantic.ValidationError) as raised:
        model.model_validate({**MINIMAL_OPTIONS[name], "colour": "blue"})
    assert [(e["type"], e["loc"]) for e in raised.value.errors()] == [
        ("extra_forbidden", ("colour",))]


def test_every_driver_type_has_its_options_model_importable_without_transports() -> None:
    """The config validates device options with drivers.options: same types, same models."""
    from drivers.options import DRIVER_OPTIONS

    assert DRIVER_OPTIONS.keys() == DRIVERS.keys()
    for kind, driver in DRIVERS.items():
        assert driver.options_model is DRIVER_OPTIONS[kind]
