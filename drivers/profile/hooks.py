"""Named brand procedures a profile can call, so the engine never branches on a brand.

A hook is a small class registered in ``HOOKS`` under its name; a profile lists it with its
parameters (``hooks: [{name: sungrow_battery_direction}]``). It may change the decoded point
values before they become telemetry (``adjust_values``) and the ordered point writes of a
command before they are planned (``adjust_writes``). Both are pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HOOKS", "EnterMode", "ProfileHook", "SignFromBits", "make_hooks"]

#: Decoded values by point name: the scaled value (None = unavailable) and the raw value.
Values = dict[str, float | None]
RawValues = Mapping[str, int | float | str | None]
#: Ordered point writes of one command: (point, raw value).
PointWrites = list[tuple[str, int | float]]


class ProfileHook:
    """Base of every hook: each method leaves things as they are unless a brand needs otherwise."""

    #: Points ``adjust_values`` reads (the engine adds them to the poll).
    reads: tuple[str, ...] = ()
    #: Points ``adjust_writes`` compares (the engine adds them to the poll and the read-back).
    compares: tuple[str, ...] = ()

    @property
    def points(self) -> tuple[str, ...]:
        """Every point the hook uses."""
        return (*self.reads, *self.compares)

    def adjust_values(self, values: Values, raw: RawValues) -> Values:
        """Rewrite decoded values before telemetry is made of them (e.g. a sign kept elsewhere)."""
        del raw
        return values

    def adjust_writes(self, writes: PointWrites, raw: RawValues) -> PointWrites:
        """Rewrite a command's writes (e.g. enter a remote-control mode first)."""
        del raw
        return writes


class SignFromBits(ProfileHook):
    """A power register without a sign whose direction is a bit of a state register.

    Params: ``point`` (the unsigned power), ``state_point``, ``negative_mask`` (the bit that
    makes the power negative in gateway signs), ``positive_mask`` (optional: without either bit
    the power reads 0).

    Sungrow SH: battery power 13021 is unsigned; running state 13000 bit 1 = charging (gateway
    sign -), bit 2 = discharging.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.point = str(params["point"])
        self.state_point = str(params["state_point"])
        self.negative_mask = int(params["negative_mask"])
        positive = params.get("positive_mask")
        self.positive_mask = None if positive is None else int(positive)
        self.reads = (self.state_point,)

    def adjust_values(self, values: Values, raw: RawValues) -> Values:
        power, state = values.get(self.point), raw.get(self.state_point)
        if power is None or not isinstance(state, int):
            return values
        out = dict(values)
        if state & self.negative_mask:
            out[self.point] = -abs(power)
        elif self.positive_mask is not None and not state & self.positive_mask:
            out[self.point] = 0.0
        else:
            out[self.point] = abs(power)
        return out


class EnterMode(ProfileHook):
    """Some devices take control writes only in a remote-control mode: write ``point`` =
    ``value`` ahead of a command's writes when the device does not hold it already.

    Params: ``point``, ``value``.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.point = str(params["point"])
        self.value = int(params["value"])
        self.compares = (self.point,)

    def adjust_writes(self, writes: PointWrites, raw: RawValues) -> PointWrites:
        if not writes or raw.get(self.point) == self.value:
            return writes
        return [(self.point, self.value), *[(p, v) for p, v in writes if p != self.point]]


HOOKS: dict[str, Callable[[Mapping[str, Any]], ProfileHook]] = {
    "sign_from_bits": SignFromBits,
    "enter_mode": EnterMode,
}


def make_hooks(refs: tuple[tuple[str, Mapping[str, Any]], ...]) -> list[ProfileHook]:
    """The hooks a profile names, built with their params.

    Raises:
        ValueError: an unknown hook or a missing / bad parameter (naming the hook).
    """
    hooks: list[ProfileHook] = []
    for name, params in refs:
        factory = HOOKS.get(name)
        if factory is None:
            raise ValueError(f"hook {name!r} is unknown (known: {', '.join(sorted(HOOKS))})")
        try:
            hooks.append(factory(params))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"hook {name}: bad or missing parameter {exc}") from None
    return hooks
