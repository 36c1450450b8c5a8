"""The driver registry: every type name maps to a class whose options model rejects unknown keys."""

from __future__ import annotations

import pydantic
import pytest

from drivers import DRIVERS


def test_registry_names_the_device_families() -> None:
    assert sorted(DRIVERS) == ["mqtt_battery", "sunspec", "victron_gx"]


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_options_models_forbid_unknown_keys(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="colour"):
        DRIVERS[name].options_model.model_validate({"host": "127.0.0.1", "colour": "blue"})
