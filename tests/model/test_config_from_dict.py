"""The generic dataclass loader behind OspreyConfig.from_dict and TrainConfig.from_dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osprey.config import PRESETS, OspreyConfig, apply_overrides, get_preset

BUNDLED_CONFIG = Path(__file__).resolve().parents[2] / "src/osprey/assets/models/osprey-small/config.json"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips(name):
    config = get_preset(name)
    assert OspreyConfig.from_dict(config.to_dict()) == config
    from_json = OspreyConfig.from_dict(json.loads(config.to_json()))  # lists where the fields are tuples
    assert from_json.vision.mean == config.vision.mean and isinstance(from_json.vision.std, tuple)
    assert from_json.replace(vision=config.vision) == config  # (timm_kwargs values are free-form: lists stay)


def test_the_bundled_config_json_loads():
    payload = json.loads(BUNDLED_CONFIG.read_text())
    for key in ("osprey_format", "includes_language_model", "tied_weights"):
        payload.pop(key, None)
    config = OspreyConfig.from_dict(payload)
    assert config.name == "small" and config.region_text == "geometry"
    assert config.vision.mean == get_preset("small").vision.mean


def test_missing_keys_take_their_defaults():
    data = get_preset("tiny").to_dict()
    del data["template"], data["region_text"], data["projector"]["token_norm"]
    config = OspreyConfig.from_dict(data)
    assert config.region_text == "none" and config.template == "osprey_v1" and config.projector.token_norm is None


def test_an_unknown_nested_key_is_named_by_its_dotted_path():
    data = get_preset("tiny").to_dict()
    data["mask_extractor"]["shape_encodng"] = "box"
    with pytest.raises(ValueError, match=r"unknown model config keys \['mask_extractor.shape_encodng'\]; "
                                         r"expected some of \['embed_dim', "):
        OspreyConfig.from_dict(data)
    data = get_preset("tiny").to_dict()
    data["colour"] = "red"
    with pytest.raises(ValueError, match=r"unknown model config keys \['colour'\]"):
        OspreyConfig.from_dict(data)


def test_overrides_strict_or_creating():
    data = {"a": {"b": 1}, "c": 2}
    assert apply_overrides(data, {"a.b": 3}) == {"a": {"b": 3}, "c": 2}
    with pytest.raises(ValueError, match=r"'a.x': 'x' is not a key there; expected one of \['b'\]"):
        apply_overrides(data, {"a.x": 1})
    with pytest.raises(ValueError, match=r"'c.d': 'c' is not a mapping"):
        apply_overrides(data, {"c.d": 1}, create=True)
    assert apply_overrides(data, [("e.f", 1), ("e.g", 2)], create=True)["e"] == {"f": 1, "g": 2}
