"""The commented starter configuration that ``energy-gateway init`` writes."""

from __future__ import annotations

from gateway.core.config.models import JWT_SECRET_ENV

STARTER = f"""\
# energy-gateway configuration, written by `energy-gateway init`.
# Edit the site below, then check it:  energy-gateway check-config THIS_FILE
# Every key, with what it makes the home do: docs/api.md; devices and their options:
# docs/drivers.md; running it as a service: docs/deploy.md.

gateway:
  host: 127.0.0.1          # loopback only; a LAN address (or a reverse proxy) to reach it from
                           # other machines: phones for the status page at /ui, Home Assistant
  port: 8080
  # data_dir: SQLite with the desired settings, the command journal, the token registry and
  # history. Default: $STATE_DIRECTORY under systemd (StateDirectory=), else
  # $XDG_STATE_HOME/energy-gateway or ~/.local/state/energy-gateway. A relative path is relative
  # to this file.
  # data_dir: /var/lib/energy-gateway
  #
  # The token signing secret: keep it out of this file, in the environment variable
  # {JWT_SECRET_ENV} (the systemd unit reads it from an EnvironmentFile;
  # `energy-gateway init --env-file FILE` makes one). jwt_secret: here works too; it must be at
  # least 32 bytes.
  # command_timeout_s: 5     # a command answers 504 when devices have not confirmed by then
  # reconcile_interval_s: 30 # how often device points are compared with the desired settings
  # journal_retention_days: 90

sites:
  - energy_site_id: 1001   # any positive number; apps address the site by it
    name: Home
    time_zone: Europe/Berlin
    devices:
      # One entry per device. This one: a SunSpec hybrid inverter (Modbus TCP). Other types:
      # victron_gx, mqtt_battery (docs/drivers.md).
      - name: inverter
        type: sunspec
        poll_interval_s: 1
        options:
          host: 192.168.1.50   # the inverter's address on your network
          port: 502
          unit_id: 1

# Home Assistant: every site as a device over MQTT discovery (docs/home-assistant.md).
# mqtt_northbound:
#   host: 127.0.0.1             # the broker Home Assistant uses (e.g. its Mosquitto add-on)
#   port: 1883                  # 8883 with tls
#   username: energy-gateway    # the add-on refuses anonymous clients
#   password: "change-me"
#   # tls: {{ca_file: /etc/energy-gateway/broker-ca.pem}}
"""
