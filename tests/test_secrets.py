"""The environment commands inherit and the masking of withheld values (fastcode.core.secrets)."""

from __future__ import annotations

import pytest

from fastcode.core import secrets


@pytest.fixture(autouse=True)
def policy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789")
    monkeypatch.setenv("MY_PROVIDER_KEY", "prov-0123456789")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_0123456789")
    monkeypatch.setenv("DB_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("SHORT_SECRET", "1")
    monkeypatch.setenv("EDITOR", "vim")
    secrets.configure(secrets.DEFAULT_DENY, ["MY_PROVIDER_KEY"])
    yield
    secrets.configure(secrets.DEFAULT_DENY, [])


def test_child_environment_drops_keys_and_deny_list_matches() -> None:
    env = secrets.child_environ({"PYTHONPATH": "/x"})
    for name in ("OPENAI_API_KEY", "MY_PROVIDER_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "SHORT_SECRET"):
        assert name not in env
    assert env["EDITOR"] == "vim" and env["PYTHONPATH"] == "/x" and "PATH" in env


def test_mask_replaces_withheld_values_but_not_short_ones() -> None:
    text = "key=sk-live-0123456789 token ghp_0123456789 pw hunter2hunter2 n=1 editor vim"
    masked = secrets.mask(text)
    assert "sk-live" not in masked and "ghp_" not in masked and "hunter2" not in masked
    assert "[masked $OPENAI_API_KEY]" in masked and "n=1" in masked and "vim" in masked


def test_patterns_are_case_insensitive() -> None:
    secrets.configure(["*secret*"], [])
    assert secrets.withheld("My_Secret_Thing") and not secrets.withheld("EDITOR")
