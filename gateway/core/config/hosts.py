"""Whether a config's host is an IP address or a host name (every section that names one)."""

from __future__ import annotations

import ipaddress
import re

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def host_problem(host: str) -> str | None:
    """Why ``host`` is neither an IP address nor an RFC 1123 host name (None when it is one)."""
    if not host.strip():
        return "is empty; give an address such as 127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():  # 999.1.1.1 is a broken address, not a name
        return f"{host!r} is neither an IP address nor a valid host name"
    return None


def valid_host(value: str) -> str:
    """``value``, or ValueError saying why it is no host (a pydantic field validator)."""
    problem = host_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
