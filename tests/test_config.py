"""The one schema: the seed config loads verbatim, bad keys and values are one-line errors."""

from __future__ import annotations

import json

import pytest

from conftest import SEED_DIR
from trainpilot.config import (ConfigError, TrainConfig, all_keys, apply_overrides, build_config, input_path,
                               load_config, output_dir)
from trainpilot.config_reference import reference_markdown


@pytest.mark.parametrize("name", ["original_config.json", "adjusted_config.json"])
def test_seed_configs_load_verbatim(name):
    raw = json.loads((SEED_DIR / name).read_text(encoding="utf-8"))
    cfg = load_config(SEED_DIR / name)
    assert set(raw) <= set(TrainConfig.model_fields), "every seed key is a schema key"
    assert len(raw) == 52
    assert cfg.class_weights == {"划痕": 1.0, "污点": 1.0, "缺失": 1.0, "变形": 1.0, "异物": 1.0}
    assert cfg.data_dir == raw["data_dir"]  # the Windows path is kept as written
    assert cfg.to_dict()["learning_rate"] == raw["learning_rate"]


def test_windows_path_is_a_one_line_error_naming_the_key():
    cfg = load_config(SEED_DIR / "original_config.json")
    with pytest.raises(ConfigError) as err:
        input_path(cfg, "data_dir")
    msg = str(err.value)
    assert "'data_dir'" in msg and "Windows path" in msg and "\n" not in msg


def test_windows_output_dir_is_skipped_with_a_notice_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(SEED_DIR / "original_config.json")
    path, notice = output_dir(cfg, "model_save_dir")
    assert path is None and "model_save_dir" in notice
    assert list(tmp_path.iterdir()) == []


def test_missing_path_names_the_key(tmp_path):
    cfg = build_config({"data_dir": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="'data_dir'.*does not exist"):
        input_path(cfg, "data_dir")


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        build_config({"learning_rat": 0.1})
    with pytest.raises(ConfigError, match="did you mean 'intelligent_training.mode'"):
        apply_overrides({}, ["intelligent_training.mdoe=auto"])


def test_bad_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="'learning_rate'.*greater than 0"):
        build_config({"learning_rate": -1})
    with pytest.raises(ConfigError, match="task_type 'detection' is not supported"):
        build_config({"task_type": "detection"})
    with pytest.raises(ConfigError, match="'optimizer'"):
        build_config({"optimizer": "Adamax"})
    with pytest.raises(ConfigError, match="'device'"):
        build_config({"device": "tpu"})


def test_set_overrides_are_typed_and_dotted():
    data = apply_overrides({}, ["num_epochs=7", "learning_rate=1e-4", "use_class_weights=true",
                                "metrics=[accuracy, recall]", "intelligent_training.mode=suggest",
                                "intelligent_training.llm.model=smollm2"])
    cfg = build_config(data)
    assert cfg.num_epochs == 7 and cfg.learning_rate == 1e-4 and cfg.use_class_weights is True
    assert cfg.metrics == ["accuracy", "recall"]
    assert cfg.intelligent_training.mode == "suggest" and cfg.intelligent_training.llm.model == "smollm2"


def test_yaml_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optimizer: sgd\nnesterov: true\nlr_scheduler: steplr\nintelligent_training:\n  enabled: true\n")
    cfg = load_config(p)
    assert cfg.optimizer == "SGD" and cfg.lr_scheduler == "StepLR" and cfg.intelligent_training.enabled


def test_broken_config_file_is_a_clear_error(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(p)


def test_reference_lists_every_key_with_help():
    ref = reference_markdown()
    for key in all_keys():
        assert f"`{key}`" in ref
    for name, field in TrainConfig.model_fields.items():
        assert field.description, f"{name} has no help text"


def test_llm_preset_key_variable_survives_a_json_round_trip():
    """Resolved configs and checkpoints store every field; the preset must still pick its key variable."""
    cfg = build_config({"intelligent_training": {"llm": {"preset": "deepseek"}}})
    again = build_config(json.loads(json.dumps(cfg.to_dict())))
    assert again.intelligent_training.llm.resolved().api_key_env == "DEEPSEEK_API_KEY"
    own = build_config({"intelligent_training": {"llm": {"preset": "deepseek", "api_key_env": "MY_KEY"}}})
    assert own.intelligent_training.llm.resolved().api_key_env == "MY_KEY"
