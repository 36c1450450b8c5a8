"""Reading a configuration: YAML into the models, every error with its key path and line; the flat form."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from drivers.options import DRIVER_OPTIONS
from gateway.core.config.models import (
    DEVICE_KEYS,
    Config,
    ConfigError,
    Loc,
    Problem,
)
from gateway.core.config.paths import anchored

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class _Located:
    line: int
    column: int


def _index_lines(node: yaml.Node, path: Loc, out: dict[Loc, _Located]) -> None:
    out[path] = _Located(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = _Located(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index_lines(value_node, (*path, key), out)
            # keep the key's own line for "unexpected key" errors
            out[(*path, key)] = _Located(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out)


def _where(loc: Loc, lines: Mapping[Loc, _Located]) -> str:
    for cut in range(len(loc), -1, -1):
        found = lines.get(tuple(loc[:cut]))
        if found is not None:
            return f"line {found.line}"
    return "line ?"


def key_path(loc: Loc) -> str:
    """A key path as written in messages: ``sites[0].devices[1].options.port``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """One line naming where the YAML broke; PyYAML's own text says ``"<unicode string>"``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}: invalid YAML at column {mark.column + 1}: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            text += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        return text
    flat = " ".join(str(exc).split()).replace('"<unicode string>"', repr(source))
    return f"line ?: invalid YAML: {flat}"


def _line_index(node: yaml.Node) -> dict[Loc, _Located]:
    lines: dict[Loc, _Located] = {}
    _index_lines(node, (), lines)
    return lines


# ---- the flat form of driver options (deprecated) ---------------------------------------------
# Until issue 10 a device's driver options sat beside name and type. Such a device still loads:
# its driver keys move under options, and each move is reported so the file can be updated.

FLAT_FORM = ("driver options beside name and type are deprecated: they go under the device's "
             "options: key (this file still loads)")


@dataclass(frozen=True)
class Deprecation:
    """A key of the deprecated flat form: where it is written and where it belongs now."""

    line: int
    key: str  # e.g. sites[0].devices[0].port
    moved_to: str | None  # e.g. sites[0].devices[0].options.port; None when the key stays
    note: str = ""

    def __str__(self) -> str:
        if self.moved_to is not None:
            return f"line {self.line}: {self.key} -> {self.moved_to}"
        return f"line {self.line}: {self.key}: {self.note}"


@dataclass(frozen=True)
class _Move:
    old: Loc
    new: Loc | None
    note: str = ""


def _flat_device(dev: Any, at: Loc) -> tuple[Any, list[_Move]]:
    """A device in the flat form rewritten with ``options:``, and what moved (pure)."""
    if not isinstance(dev, dict) or "options" in dev or dev.get("type") not in DRIVER_OPTIONS:
        return dev, []  # nested already, or nothing to judge options by
    kind = dev["type"]
    fields = DRIVER_OPTIONS[kind].model_fields
    flat = [key for key in dev if key in fields and key not in DEVICE_KEYS]
    if not flat:
        return dev, []
    moves = [_Move((*at, key), (*at, "options", key)) for key in flat]
    # a key both the gateway and the driver have: in the flat form it always was the gateway's
    moves += [_Move((*at, key), None, f"stays the gateway's key; the {kind} driver's own "
                                      f"{key} goes to {key_path((*at, 'options', key))}")
              for key in dev if key in fields and key in DEVICE_KEYS]
    nested = {key: value for key, value in dev.items() if key not in flat}
    nested["options"] = {key: dev[key] for key in flat}
    return nested, moves


def _nest_flat_options(data: dict[str, Any]) -> tuple[dict[str, Any], list[_Move]]:
    """``data`` with every flat-form device nested, and the keys that moved (pure)."""
    sites = data.get("sites")
    if not isinstance(sites, list):
        return data, []
    moves: list[_Move] = []
    new_sites: list[Any] = []
    for s, site in enumerate(sites):
        devices = site.get("devices") if isinstance(site, dict) else None
        if not isinstance(devices, list):
            new_sites.append(site)
            continue
        new_devices = []
        for d, dev in enumerate(devices):
            nested, moved = _flat_device(dev, ("sites", s, "devices", d))
            new_devices.append(nested)
            moves += moved
        new_sites.append({**site, "devices": new_devices})
    return ({**data, "sites": new_sites} if moves else data), moves


def _moved_lines(lines: Mapping[Loc, _Located], moves: Sequence[_Move]) -> dict[Loc, _Located]:
    """The line index with each moved key (and all below it) also under its new path."""
    out = dict(lines)
    # a moved key is always ("sites", s, "devices", d, key): one pass over the index
    new_of = {move.old: move.new for move in moves if move.new is not None}
    for new in new_of.values():
        device = new[:-2]
        if device in lines:
            out.setdefault((*device, "options"), lines[device])
    for path, where in lines.items():
        moved_to = new_of.get(path[:5])
        if moved_to is not None:
            out[moved_to + path[5:]] = where
    return out


def _mixed_form(loc: Loc, data: Mapping[str, Any]) -> str | None:
    """For a driver option written beside a device's ``options:``, how to move it (else None)."""
    if len(loc) != 5 or loc[0] != "sites" or loc[2] != "devices" or not isinstance(loc[4], str):
        return None
    try:
        dev = data["sites"][loc[1]]["devices"][loc[3]]
        model = DRIVER_OPTIONS[dev["type"]]
    except (KeyError, IndexError, TypeError):
        return None
    if loc[4] not in model.model_fields:
        return None
    return (f"a {dev['type']} driver option outside options:; move it to "
            f"{key_path((*loc[:4], 'options', loc[4]))} (the old flat form loads only when a "
            "device has no options: key)")


def _problems(exc: ValidationError, lines: Mapping[Loc, _Located], data: Mapping[str, Any],
              prefix: Loc = ()) -> list[str]:
    problems = []
    for err in exc.errors():
        # pydantic inserts validator names and union tags ("function-after[...]",
        # "options[sunspec]") into loc; drop them
        loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and "[" in p)))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _mixed_form(loc, data) or msg
        problems.append(f"{_where(loc, lines)}: {key_path(loc)}: {msg}")
    return problems


@dataclass(frozen=True)
class _Document:
    """A configuration file's YAML: its data (flat-form devices nested) and where each key is."""

    data: dict[str, Any]
    lines: Mapping[Loc, _Located]
    moves: tuple[_Move, ...]


def _document(text: str, source: str) -> _Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, source)], source) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(["line 1: the configuration must be a mapping"], source)
    lines = _line_index(node)
    data, moves = _nest_flat_options(data)
    return _Document(data, _moved_lines(lines, moves), tuple(moves))


@dataclass(frozen=True)
class LoadedConfig:
    """A parsed configuration file: the gateway's Config, its text, and its deprecated keys."""

    config: Config
    text: str
    source: str
    deprecations: tuple[Deprecation, ...]
    _document: _Document

    def section(self, key: str, model: type[_M]) -> _M | None:
        """Top-level section ``key`` validated with ``model`` (None when absent).

        For sections the gateway ignores (``simulator:``): their errors name the key path and
        line like the gateway's own.
        """
        if key not in self._document.data:
            return None
        try:
            return model.model_validate(self._document.data[key])
        except ValidationError as exc:
            raise ConfigError(_problems(exc, self._document.lines, self._document.data, (key,)),
                              self.source) from None

    def locate(self, problems: Sequence[Problem]) -> list[str]:
        """Each problem as ``line N: key.path: message``, with the line of its key."""
        return [f"{_where(p.loc, self._document.lines)}: {key_path(p.loc)}: {p.message}"
                for p in problems]


def parse(text: str, source: str = "<config>") -> LoadedConfig:
    """Parse YAML text, or raise ConfigError naming each bad key and its line."""
    doc = _document(text, source)
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, doc.lines, doc.data), source) from None
    deprecations = tuple(
        Deprecation(doc.lines[m.old].line if m.old in doc.lines else 0, key_path(m.old),
                    None if m.new is None else key_path(m.new), m.note)
        for m in doc.moves)
    return LoadedConfig(config, text, source, deprecations, doc)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a Config, or raise ConfigError naming each bad key and its line."""
    return parse(text, source).config


def read_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and parse a configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"cannot read: {reason}"], str(p)) from None
    loaded = parse(text, str(p))
    section = loaded.config.gateway
    data_dir = anchored(section.data_dir, p.parent.absolute())
    if data_dir == section.data_dir:
        return loaded
    config = loaded.config.model_copy(
        update={"gateway": section.model_copy(update={"data_dir": data_dir})})
    return dataclasses.replace(loaded, config=config)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and parse a configuration file."""
    return read_config(path).config
