"""A Mosquitto that refuses anonymous clients: a password file, TLS listeners, certificates made here."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import ipaddress
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.brokers import HOST, free_port, mosquitto_path

USER = "gateway"
PASSWORD = "s3cret-broker-pw-7f2a"
_READY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, the broker's certificate (127.0.0.1), a client's, and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(cn: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, *,
          server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Certificates for one test run (synchronous: call it from a sync fixture, off the loop)."""
    pem = serialization.Encoding.PEM
    ca_key, ca_cert = _ca("energy-gateway test CA")
    server_key, server_cert = _leaf(HOST, ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("gateway-client", ca_key, ca_cert, server=False)
    _, other_cert = _ca("some other CA")
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key",
              directory / "client.pem", directory / "client.key", directory / "other-ca.pem")
    pki.ca.write_bytes(ca_cert.public_bytes(pem))
    pki.server_cert.write_bytes(server_cert.public_bytes(pem))
    _write_key(server_key, pki.server_key)
    pki.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(client_key, pki.client_key)
    pki.other_ca.write_bytes(other_cert.public_bytes(pem))
    return pki


def password_file(directory: Path) -> Path:
    """A Mosquitto password file with USER / PASSWORD (made by ``mosquitto_passwd``; sync)."""
    path = directory / "passwd"
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([tool, "-b", "-c", str(path), USER, PASSWORD], check=True,
                   capture_output=True, timeout=10)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class SecuredBroker:
    """The listeners of a Mosquitto that wants a login on each.

    ``plain_port``: MQTT with a password; ``tls_port``: TLS (the test CA) with a password;
    ``cert_port``: TLS that also wants a client certificate signed by the test CA.
    """

    host: str
    plain_port: int
    tls_port: int
    cert_port: int
    pki: Pki


def _config(directory: Path, pki: Pki, passwd: Path, ports: tuple[int, int, int]) -> Path:
    plain, tls, cert = ports
    tls_files = f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
    text = (
        f"user {getpass.getuser()}\n"  # as root Mosquitto would switch to a user who can't read these
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {passwd}\n"
        f"listener {plain} {HOST}\n"
        f"listener {tls} {HOST}\n{tls_files}"
        f"listener {cert} {HOST}\n{tls_files}require_certificate true\n"
    )
    path = directory / "mosquitto.conf"
    path.write_text(text)
    return path


async def _ready(proc: asyncio.subprocess.Process, port: int) -> None:
    async with asyncio.timeout(_READY_TIMEOUT_S):
        while True:
            if proc.returncode is not None:
                raise OSError(f"mosquitto exited with {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


@asynccontextmanager
async def secured_mosquitto(directory: Path, pki: Pki, passwd: Path) -> AsyncIterator[SecuredBroker]:
    """Run a Mosquitto with a password file and two TLS listeners on free loopback ports."""
    exe = mosquitto_path()
    if exe is None:
        raise RuntimeError("mosquitto is not installed")
    last: OSError | None = None
    for _ in range(5):
        ports = (free_port(), free_port(), free_port())
        if len(set(ports)) < 3:
            continue
        conf = _config(directory, pki, passwd, ports)
        proc = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            for port in ports:
                await _ready(proc, port)
        except OSError as exc:  # TimeoutError included: a port taken, mosquitto gone
            last = exc
            await _stop(proc)
            continue
        try:
            yield SecuredBroker(HOST, *ports, pki)
        finally:
            await _stop(proc)
        return
    raise last or OSError("no free ports")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        async with asyncio.timeout(5):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, 9)
        await proc.wait()
