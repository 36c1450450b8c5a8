"""What a bearer token may grant: its scopes and its longest lifetime (constants, no I/O)."""

from __future__ import annotations

READ_SCOPE = "energy_device_data"
COMMAND_SCOPE = "energy_cmds"
# Raising and clearing a storm alert by hand (installers, scripts): not a Fleet scope, and not
# granted by energy_cmds (docs/api.md, "Storm watch").
STORM_ADMIN_SCOPE = "storm_admin"
# Operating a hub (resolving a site two gateways claim): not a Fleet scope (docs/hub.md).
HUB_ADMIN_SCOPE = "hub_admin"
KNOWN_SCOPES = frozenset({READ_SCOPE, COMMAND_SCOPE, STORM_ADMIN_SCOPE, HUB_ADMIN_SCOPE, "openid",
                          "offline_access", "user_data"})
LIVE_ENV = "live"  # a token for the real sites (its claims carry no env)
TEST_ENV = "test"  # a sandbox token: claim env "test"; reaches sandbox sites only
ENVIRONMENTS = (LIVE_ENV, TEST_ENV)
MAX_TTL_S = 365 * 86_400  # a longer-lived bearer token is a standing risk: issue a new one yearly
