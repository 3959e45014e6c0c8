"""Config layers (default -> user -> repo -> env -> CLI), one-line errors naming key and source, `config show`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.core.config import ConfigError, load_settings


def test_defaults_come_from_the_shipped_file(isolated_env) -> None:
    loaded = load_settings(None)
    assert loaded.settings.agent.max_steps == 30
    assert loaded.settings.routes.plan == "default"
    assert loaded.source_of("agent.max_steps") == "default"
    assert not loaded.endpoint_configured()


def test_layers_later_wins(tmp_path: Path, isolated_env, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg" / "fastcode" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[agent]\nmax_steps = 11\ntimeout_s = 50\ntest_cmd = 'user'\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".fastcode.toml").write_text("[agent]\nmax_steps = 12\ntimeout_s = 60\n")
    monkeypatch.setenv("FASTCODE_AGENT__MAX_STEPS", "13")
    loaded = load_settings(repo, overrides=["agent.max_steps=14"], flags={"agent.timeout_s": 70})
    assert loaded.settings.agent.max_steps == 14
    assert loaded.settings.agent.timeout_s == 70
    assert loaded.settings.agent.test_cmd == "user"
    assert loaded.source_of("agent.test_cmd") == str(user)
    assert loaded.source_of("agent.max_steps") == "-c agent.max_steps"
    loaded = load_settings(repo)
    assert loaded.settings.agent.max_steps == 13
    assert loaded.source_of("agent.max_steps") == "environment"


def test_model_env_and_flags_set_the_default_profile(isolated_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("FASTCODE_MODEL", "env-model")
    loaded = load_settings(None)
    assert loaded.settings.models["default"].base_url == "http://env:1/v1"
    assert loaded.settings.models["default"].model == "env-model"
    assert loaded.endpoint_configured()
    loaded = load_settings(None, flags={"models.default.model": "flag-model"})
    assert loaded.settings.models["default"].model == "flag-model"


def test_extra_profiles_and_routes(isolated_env) -> None:
    loaded = load_settings(
        None, overrides=["models.fast.model=small", "models.fast.base_url=http://x/v1", "routes.act=fast"]
    )
    assert loaded.settings.profile("act")[0] == "fast"
    assert loaded.settings.profile("edit")[0] == "fast"  # unset kinds fall back to act
    assert loaded.settings.profile("escalate")[0] == "default"  # escalate falls back to plan


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[agent]\nmax_stepz = 3\n", "unknown key 'agent.max_stepz'"),
        ("[agent]\nmax_steps = 'many'\n", "agent.max_steps: Input should be a valid integer"),
        ("[agent]\nmax_steps = 0\n", "agent.max_steps"),
        ("[routes]\nact = 'nope'\n", "routes.act names model profile 'nope'"),
        ("[agent\n", "not valid TOML"),
        ("[agent.search]\nsamples = 0\n", "agent.search.samples: Input should be greater than or equal to 1"),
        ("[agent.search]\ndraw = 'parallel'\n", "agent.search.draw: Input should be 'auto', 'batch' or 'sequential'"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, isolated_env, toml: str, expected: str) -> None:
    (tmp_path / ".fastcode.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path)
    message = str(info.value)
    assert expected in message
    assert str(tmp_path / ".fastcode.toml") in message
    assert "\n" not in message


def test_bad_override_syntax(isolated_env) -> None:
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        load_settings(None, overrides=["agent.max_steps"])


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path, isolated_env) -> None:
    (tmp_path / ".fastcode.toml").write_text("[agent]\nwarmup = 'sometimes'\n")
    result = run_cli(["exec", "x", "--repo", str(tmp_path)], cwd=tmp_path, env=isolated_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "agent.warmup" in result.stderr and ".fastcode.toml" in result.stderr


def test_no_endpoint_and_a_bad_local_server_path_exits_2_with_one_line(tmp_path: Path, isolated_env) -> None:
    result = run_cli(
        ["exec", "x", "--repo", str(tmp_path), "-c", "local.llama_server='/nonexistent'"],
        cwd=tmp_path,
        env=isolated_env,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "/nonexistent" in result.stderr


def test_config_show_prints_sources_and_masks_keys(tmp_path: Path, isolated_env) -> None:
    (tmp_path / ".fastcode.toml").write_text("[agent]\nmax_steps = 9\n")
    env = {**isolated_env, "OPENAI_API_KEY": "sk-secret-value-1234"}
    result = run_cli(["config", "show", "--repo", str(tmp_path)], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "max_steps = 9" in result.stdout and str(tmp_path / ".fastcode.toml") in result.stdout
    assert "sk-secret-value-1234" not in result.stdout
    assert "sk-…34" in result.stdout


def test_only_an_endpoint_or_a_key_counts_as_configured(isolated_env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_settings(None, overrides=["models.default.max_tokens=64"]).endpoint_configured()
    assert load_settings(None, overrides=["models.default.base_url='http://h/v1'"]).endpoint_configured()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert load_settings(None).endpoint_configured()


def test_an_untrusted_repository_cannot_loosen_approvals_or_wipe_a_section(tmp_path: Path, isolated_env) -> None:
    user = tmp_path / "user.toml"
    user.write_text("[agent]\napproval = 'auto-edit'\n[security]\nenv_deny = ['AWS_*', 'GH_PAT']\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".fastcode.toml").write_text("security = {}\n[agent]\napproval = 'full-auto'\n")
    loaded = load_settings(repo, user_config=user)
    assert loaded.settings.agent.approval == "auto-edit"
    assert loaded.settings.security.env_deny == ["AWS_*", "GH_PAT"]
    assert "agent.approval" in loaded.ignored
