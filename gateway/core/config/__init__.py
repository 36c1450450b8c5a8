"""The gateway's configuration: its models, reading YAML with every error located, deployment checks.

``models.py`` the pydantic models; ``loading.py`` YAML into them (key path and line in every error,
the deprecated flat form of driver options); ``checks.py`` what a configuration meant to run must
also satisfy.
"""

from gateway.core.config.chargers import ChargePointConfig, OcppSection
from gateway.core.config.checks import (
    BOUNDS_S,
    DRIVER_BOUNDS_S,
    Listener,
    Purpose,
    deployment_problems,
    effective_secret,
    locate,
    secret_problem,
)
from gateway.core.config.hosts import host_problem
from gateway.core.config.loading import (
    FLAT_FORM,
    Deprecation,
    LoadedConfig,
    key_path,
    load_config,
    parse,
    parse_config,
    read_config,
)
from gateway.core.config.models import (
    DEVICE_KEYS,
    FOREIGN_SECTIONS,
    JWT_SECRET_ENV,
    MIN_SECRET_BYTES,
    PUBLISHED_SECRETS,
    SECRET_FIX,
    ClockSection,
    Config,
    ConfigError,
    DeviceConfig,
    GatewaySection,
    Loc,
    Plan,
    Problem,
    RateLimits,
    Severity,
    SiteConfig,
)
from gateway.core.config.northbound import MqttNorthbound

__all__ = [
    "BOUNDS_S",
    "DEVICE_KEYS",
    "DRIVER_BOUNDS_S",
    "FLAT_FORM",
    "FOREIGN_SECTIONS",
    "JWT_SECRET_ENV",
    "MIN_SECRET_BYTES",
    "PUBLISHED_SECRETS",
    "SECRET_FIX",
    "ChargePointConfig",
    "ClockSection",
    "Config",
    "ConfigError",
    "Deprecation",
    "DeviceConfig",
    "GatewaySection",
    "Listener",
    "LoadedConfig",
    "Loc",
    "MqttNorthbound",
    "OcppSection",
    "Plan",
    "Problem",
    "Purpose",
    "RateLimits",
    "Severity",
    "SiteConfig",
    "deployment_problems",
    "effective_secret",
    "host_problem",
    "key_path",
    "load_config",
    "locate",
    "parse",
    "parse_config",
    "read_config",
    "secret_problem",
]
