"""Where the gateway keeps its state when the config names no ``data_dir``: systemd's, else XDG's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_DIR = "energy-gateway"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The state directory, never relative to the working directory.

    ``$STATE_DIRECTORY`` (set by systemd for ``StateDirectory=``; the first when it lists
    several), else ``$XDG_STATE_HOME/energy-gateway``, else ``~/.local/state/energy-gateway``.
    A relative ``XDG_STATE_HOME`` is ignored, as the XDG Base Directory spec says.
    """
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_DIR
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / APP_DIR


def anchored(data_dir: Path, config_dir: Path) -> Path:
    """A ``data_dir`` written relative in a config file is relative to that file's directory."""
    return data_dir if data_dir.is_absolute() else config_dir / data_dir
