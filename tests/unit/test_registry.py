"""The driver registry: every type name maps to a class whose options model rejects unknown keys."""

from __future__ import annotations

import pydantic
import pytest

from drivers.registry import DRIVERS


def test_registry_names_the_device_families() -> None:
    assert sorted(DRIVERS) == ["mqtt_battery", "sunspec", "victron_gx"]


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_options_models_forbid_unknown_keys(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="colour"):
        DRIVERS[name].options_model.model_validate({"host": "127.0.0.1", "colour": "blue"})


def test_every_driver_type_has_its_options_model_importable_without_transports() -> None:
    """The config validates device options with drivers.options: same types, same models."""
    from drivers.options import DRIVER_OPTIONS

    assert DRIVER_OPTIONS.keys() == DRIVERS.keys()
    for kind, driver in DRIVERS.items():
        assert driver.options_model is DRIVER_OPTIONS[kind]
