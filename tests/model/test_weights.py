from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from osprey.config import OspreyConfig, osprey_7b, tiny
from osprey.model import build_model
from osprey.model.weights import (
    CheckpointError,
    build_empty,
    from_pretrained,
    load_official,
    official_state_dict_shapes,
    save_pretrained,
    to_official_key,
)


def test_osprey_7b_has_exactly_the_official_names_and_shapes(golden_dir: Path) -> None:
    """Every official 7B tensor: the golden key list (1 LLM layer) generalised to 32 layers."""
    model = build_empty(osprey_7b())
    ours = official_state_dict_shapes(model)
    golden = {p["name"]: tuple(p["shape"]) for p in json.loads((golden_dir / "osprey_tiny_llm.json").read_text())["parameters"]}
    golden.pop("model.layers.0.self_attn.rotary_emb.inv_freq")
    layer0 = {k: v for k, v in golden.items() if k.startswith("model.layers.0.")}
    expected = {k: v for k, v in golden.items() if not k.startswith("model.layers.")}
    for i in range(32):
        for key, shape in layer0.items():
            shape = (4096, 11008) if "down_proj" in key else (11008, 4096) if ("up_proj" in key or "gate_proj" in key) else shape
            expected[key.replace("layers.0.", f"layers.{i}.")] = shape
    assert ours == expected


def _write_official_folder(model, folder: Path) -> None:
    """An official-layout folder: config.json, two pytorch_model-*.bin shards + index, inv_freq buffers."""
    state = {to_official_key(k): v.clone() for k, v in model.state_dict().items()}
    for i in range(model.language_model.config.num_hidden_layers):
        state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    keys = sorted(state)
    shards = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2], "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2 :]}
    folder.mkdir()
    for name, shard_keys in shards.items():
        torch.save({k: state[k] for k in shard_keys}, folder / name)
    weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    hf = model.language_model.config
    config = {"architectures": ["OspreyLlamaForCausalLM"], "model_type": "osprey", "mm_projector_type": "mlp2x_gelu",
              "mm_vision_tower": "open_clip_pytorch_model.bin", "hidden_size": hf.hidden_size,
              "intermediate_size": hf.intermediate_size, "num_hidden_layers": hf.num_hidden_layers,
              "num_attention_heads": hf.num_attention_heads, "num_key_value_heads": hf.num_key_value_heads,
              "vocab_size": hf.vocab_size, "max_position_embeddings": hf.max_position_embeddings,
              "rms_norm_eps": hf.rms_norm_eps, "hidden_act": "silu", "tie_word_embeddings": False,
              "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    (folder / "config.json").write_text(json.dumps(config))


def _official_shaped_small_llm():
    """The real ConvNeXt-L tower at 512 px with a tiny LLM: cheap, but official-layout loadable."""
    config = osprey_7b().replace(language_model=tiny().language_model)
    return build_model(config.replace(mask_extractor=config.mask_extractor)).to(torch.bfloat16)


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory) -> tuple:
    model = _official_shaped_small_llm()
    folder = tmp_path_factory.mktemp("ckpt") / "official"
    _write_official_folder(model, folder)
    return model, folder


def test_load_official_folder_with_strict_accounting(official_folder) -> None:
    model, folder = official_folder
    loaded = load_official(folder)
    ours = loaded.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert not any(p.requires_grad for p in loaded.vision_encoder.parameters())


def test_missing_and_unexpected_keys_are_named(official_folder, tmp_path: Path) -> None:
    _, folder = official_folder
    state = torch.load(folder / "pytorch_model-00001-of-00002.bin", weights_only=True)
    dropped = sorted(state)[0]
    del state[dropped]
    state["mask_extractor.extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    torch.save(state, broken / "pytorch_model-00001-of-00002.bin")
    with pytest.raises(CheckpointError) as err:
        load_official(broken)
    assert dropped in str(err.value) and "mask_extractor.extra.weight" in str(err.value)


def test_save_pretrained_round_trips_exactly(tmp_path: Path) -> None:
    model = build_model(tiny())
    save_pretrained(model, tmp_path / "ours", max_shard_bytes=2_000_000)
    assert (tmp_path / "ours" / "model.safetensors.index.json").exists()
    loaded = from_pretrained(tmp_path / "ours")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    ids = torch.randint(3, 32000, (1, 6))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_save_pretrained_keeps_tied_embeddings_tied(tmp_path: Path) -> None:
    """An LLM with tied input/output embeddings (SmolLM2) saves once and loads tied again."""
    data = tiny().to_dict()
    data["language_model"]["hf_config"]["tie_word_embeddings"] = True
    model = build_model(OspreyConfig.from_dict(data))
    llm = model.language_model
    assert llm.lm_head.weight.data_ptr() == llm.get_input_embeddings().weight.data_ptr()
    save_pretrained(model, tmp_path / "tied")
    payload = json.loads((tmp_path / "tied" / "config.json").read_text())
    assert [sorted(pair) for pair in payload["tied_weights"].items()] == [
        ["language_model.lm_head.weight", "language_model.model.embed_tokens.weight"]]
    loaded = from_pretrained(tmp_path / "tied")
    assert loaded.language_model.lm_head.weight is loaded.language_model.get_input_embeddings().weight
    ids = torch.randint(3, 32000, (1, 6))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_saved_llm_keeps_its_own_tokenizer(tmp_path: Path) -> None:
    """tokenizer 'model' (the LLM's own, e.g. SmolLM2's): a folder that saves the LLM saves the
    tokenizer beside it, and loads without the LLM's original source."""
    import shutil

    from osprey.model.loading import load_model
    from osprey.text.tokenizer import llama2_tokenizer

    source = tmp_path / "hf_llm"
    build_model(tiny()).language_model.save_pretrained(source)
    shutil.copyfile(llama2_tokenizer().model_path, source / "tokenizer.model")
    data = tiny().to_dict()
    data["language_model"].update(source="pretrained", path=str(source), tokenizer="model")
    model = build_model(OspreyConfig.from_dict(data))
    save_pretrained(model, tmp_path / "saved")
    shutil.rmtree(source)
    loaded, tokenizer, _ = load_model(tmp_path / "saved", for_inference=False)
    assert tokenizer.encode("a red car") == llama2_tokenizer().encode("a red car")
    save_pretrained(loaded, tmp_path / "again")  # a model loaded from such a folder saves it again
    assert (tmp_path / "again" / "tokenizer.model").is_file()


def test_convert_cli_and_open_clip_tower_weights(official_folder, tmp_path: Path) -> None:
    """An official folder without tower tensors loads with a separate open_clip checkpoint; convert round-trips."""
    from osprey.cli import main

    model, folder = official_folder
    stripped = tmp_path / "no_tower"
    stripped.mkdir()
    (stripped / "config.json").write_text((folder / "config.json").read_text())
    state = {}
    for shard in sorted(folder.glob("pytorch_model-*.bin")):
        state.update(torch.load(shard, weights_only=True))
    tower = {k.removeprefix("model.vision_tower.vision_tower."): v for k, v in state.items() if k.startswith("model.vision_tower.")}
    rest = {k: v for k, v in state.items() if not k.startswith("model.vision_tower.")}
    torch.save(rest, stripped / "pytorch_model.bin")
    clip = {**tower, "token_embedding.weight": torch.zeros(4, 2), "logit_scale": torch.tensor(1.0)}
    torch.save(clip, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="missing"):
        load_official(stripped)
    # Vicuna's sampling values, as HF save_pretrained leaves them in the released folders
    (stripped / "generation_config.json").write_text('{"temperature": 0.9, "top_p": 0.6, "max_length": 4096}')
    out = tmp_path / "converted"
    assert main(["convert", str(stripped), str(out), "--clip-weights", str(tmp_path / "open_clip_pytorch_model.bin")]) == 0
    converted = from_pretrained(out)
    assert converted.generation_defaults == {"temperature": 0.9, "top_p": 0.6}  # carried over by convert
    for key, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
