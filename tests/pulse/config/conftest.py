"""Fixtures of the configuration loader's tests: write YAML to a temporary directory, load it,
or check that loading it fails naming file, key and problem."""
from __future__ import annotations

import textwrap

import pytest

from pulse.config import load_config
from pulse.schemas.config import Config, ConfigError


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write YAML to cfg.yaml in a temporary directory and return the relative path."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str, name: str = "cfg.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    return _write


@pytest.fixture
def load(write):
    def _load(text: str) -> Config:
        return load_config(write(text))

    return _load


@pytest.fixture
def fails(write):
    """Load YAML that must be rejected; check file, key and problem words; return the error."""

    def _fails(text: str, key: str, *words: str) -> ConfigError:
        path = write(text)
        with pytest.raises(ConfigError) as e:
            load_config(path)
        err = e.value
        assert err.file == path
        assert err.key == key, str(err)
        for w in words:
            assert w in err.problem, str(err)
        assert str(err) == f"{path}: {key}: {err.problem}"
        return err

    return _fails
