"""`energy-gateway init`: a commented starter config that checks for serve, never an overwrite."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway import cli
from gateway.core.config import JWT_SECRET_ENV, read_config


def test_init_writes_a_config_that_checks_and_an_env_file_with_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, env = tmp_path / "config.yaml", tmp_path / "env"
    assert cli.main(["init", "--config", str(config), "--env-file", str(env)]) == 0
    assert f"wrote {config}" in capsys.readouterr().out
    text = config.read_text()
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) > 15  # commented
    assert "jwt_secret:" not in text.replace("# jwt_secret", "").replace("jwt_secret: here", "")
    loaded = read_config(config)
    assert [s.energy_site_id for s in loaded.config.sites] == [1001]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    key, _, secret = env.read_text().strip().partition("=")
    assert key == JWT_SECRET_ENV
    assert len(secret) >= 48
    monkeypatch.setenv(JWT_SECRET_ENV, secret)
    assert cli.main(["check-config", "--for", "serve", str(config)]) == 0
    assert "ok for serve" in capsys.readouterr().out


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, env = tmp_path / "config.yaml", tmp_path / "env"
    config.write_text("mine\n")
    assert cli.main(["init", "--config", str(config), "--env-file", str(env)]) == 2
    err = capsys.readouterr().err
    assert f"{config} exists" in err
    assert config.read_text() == "mine\n"
    assert not env.exists()  # nothing written when one target exists
    config.unlink()
    env.write_text("KEEP=1\n")
    assert cli.main(["init", "--config", str(config), "--env-file", str(env)]) == 2
    assert env.read_text() == "KEEP=1\n"
    assert not config.exists()


def test_init_into_a_missing_directory_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["init", "--config", str(tmp_path / "no" / "config.yaml")]) == 2
    assert "cannot write" in capsys.readouterr().err
