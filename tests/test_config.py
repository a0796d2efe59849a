import pytest

from bot.config import ConfigError, load_config, resolve_data_dir

from tests.conftest import ROOT


def test_shipped_config_is_valid():
    config = load_config(ROOT / "config.yaml")
    assert config.knowledge.answer.max_reply_chars == 1000


def test_unknown_key_names_key_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("bot:\n  name: x\nknowledge:\n  answer:\n    max_reply_charz: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:5" in str(err.value)
    assert "knowledge.answer.max_reply_charz" in str(err.value)


def test_wrong_type_names_key_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("knowledge:\n  max_chunk_chars: lots\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:2" in str(err.value) and "knowledge.max_chunk_chars" in str(err.value)


def test_broken_yaml_is_reported_with_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("bot:\n  name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(path)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="不存在"):
        load_config(tmp_path / "nope.yaml")


def test_data_dir_override_wins_over_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SAFEDUTY_DATA_DIR", str(tmp_path / "env"))
    config = load_config(ROOT / "config.yaml")
    assert resolve_data_dir(config) == (tmp_path / "env").resolve()
    assert resolve_data_dir(config, str(tmp_path / "cli")) == (tmp_path / "cli").resolve()
