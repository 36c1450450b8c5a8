"""The bundled profiles (drivers/profiles/*.yaml), loaded and checked once at import."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from drivers.profile.engine import Compiled, compile_profile
from drivers.profile.schema import Profile, ProfileError, load_profile

__all__ = ["PROFILES", "PROFILE_DIR", "compiled", "load_catalog"]

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def load_catalog(directory: Path) -> dict[str, Profile]:
    """Every ``*.yaml`` profile of ``directory`` by family name, each compiled once to prove its
    hooks and read plans (blocking file reads: start-up only).

    Raises:
        ProfileError: the first bad file, naming it, the point and the reason.
    """
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        profile = load_profile(path)
        try:
            compile_profile(profile)
        except ValueError as exc:
            raise ProfileError(path.name, "hooks", str(exc)) from None
        profiles[profile.family] = profile
    return profiles


#: Read at import, before any event loop runs: validating a config never touches the disk.
PROFILES: dict[str, Profile] = load_catalog(PROFILE_DIR)


@cache
def compiled(family: str) -> Compiled:
    """The compiled profile of a bundled family (KeyError if unknown)."""
    return compile_profile(PROFILES[family])
