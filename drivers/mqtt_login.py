"""How a client logs in to an MQTT broker: username/password and TLS (config keys, no transport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["BrokerLogin", "BrokerLoginOptions", "BrokerTls"]


class BrokerTls(BaseModel):
    """TLS to the broker.

    ``ca_file``: PEM file of the CA(s) that signed the broker's certificate (None: the system's
    trusted CAs). ``cert_file`` / ``key_file``: a client certificate and its unencrypted key, for
    brokers that authenticate clients by certificate (``key_file`` None: the key is in
    ``cert_file``). ``verify`` false accepts any broker certificate and host name: only for a
    broker on a trusted network with a self-signed certificate and no CA file at hand.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True

    @model_validator(mode="after")
    def _key_needs_cert(self) -> BrokerTls:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        return self

    def files(self) -> dict[str, Path]:
        """The configured files by key (``tls.ca_file`` ...), for checks that they can be read."""
        named = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return {f"tls.{k}": v for k, v in named.items() if v is not None}


@dataclass(frozen=True, slots=True)
class BrokerLogin:
    """What the transport needs to log in; the password never shows in a repr or a log."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: BrokerTls | None = None

    @property
    def anonymous(self) -> bool:
        """True without a username (the broker must allow anonymous clients)."""
        return self.username is None


class BrokerLoginOptions(BaseModel):
    """The login keys every MQTT client config shares (drivers and the northbound bridge).

    ``username`` / ``password``: the broker's login (Mosquitto ``password_file``, Venus OS's
    secured profile, Home Assistant's Mosquitto add-on); none = anonymous. ``tls``: connect over
    TLS (the broker's TLS port, usually 8883), verifying its certificate unless told not to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = Field(None, min_length=1, max_length=256)
    password: SecretStr | None = Field(None, max_length=1024)
    tls: BrokerTls | None = None

    @model_validator(mode="after")
    def _password_needs_user(self) -> BrokerLoginOptions:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        return self

    def login(self) -> BrokerLogin:
        """The login as the transport takes it."""
        password = None if self.password is None else self.password.get_secret_value()
        return BrokerLogin(self.username, password, self.tls)
