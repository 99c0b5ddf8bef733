"""`finetune` through the CLI: run folders that runs ls / predict / compare / report / sweep
folders read like head runs, recipes, from-scratch encoders, and one-line refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tests.toy_trunk  # noqa: F401  (registers toy-convnet)
from tests.cli_helpers import run_ok, run_refused

TEXT = ["--text-encoder", "minilm", "--text-weights", "random",
        "--text-opt", 'config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, '
                      '"intermediate_size": 64}', "--text-opt", "max_length=16"]
IMAGE = ["--image-encoder", "toy-convnet", "--image-weights", "random"]
FAST = ["--max-epochs", "2", "--workers", "0", "--quiet", "--head-lr", "3e-3", "--backbone-lr", "1e-3"]


def base(data: Path, tmp: Path) -> list:
    return ["finetune", "--data", data, "--format", "mmimdb", "--cache-dir", tmp / "caches", *FAST]


def test_a_fine_tuned_run_is_a_run_like_any_other(tiny_data, tmp_path):
    out = run_ok([*base(tiny_data, tmp_path), *IMAGE, *TEXT, "--out", tmp_path / "runs", "--fusion", "gmu"])
    assert "image: --image-unfreeze last:1 (default for toy-convnet)" in out
    assert "input: prefix" in out and "test macro-F1" in out
    run = next((tmp_path / "runs").glob("ft-gmu-*"))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["fusion"] == "gmu" and set(cfg["config"]["features"]) == {"image", "text"}
    assert "ft-gmu" in run_ok(["runs", "ls", tmp_path / "runs"])
    poster = next((tiny_data / "dataset").glob("*.jpeg"))
    assert "input:" in run_ok(["predict", run, "--image", poster, "--text", "A detective in the city"])
    assert "report.md" in run_ok(["report", run, "--out", tmp_path / "report"])
    again = run_ok([*base(tiny_data, tmp_path), *IMAGE, *TEXT, "--out", tmp_path / "runs", "--fusion", "gmu"])
    assert "up to date" in again


def test_seeds_in_a_sweep_folder_aggregate_and_compare(tiny_data, tmp_path):
    sweep = tmp_path / "sweep"
    args = [*base(tiny_data, tmp_path), *IMAGE, *TEXT, "--sweep-dir", sweep, "--seed", "0", "--seed", "1"]
    run_ok([*args, "--text-unfreeze", "none"])
    run_ok([*args, "--text-unfreeze", "last:1"])
    doc = json.loads((sweep / "sweep.json").read_text())
    groups = {e["group"] for e in doc["runs"].values()}
    assert len(doc["runs"]) == 4 and len(groups) == 2  # seeds share a group
    summary = (sweep / "summary.md").read_text()
    assert "text.minilm.none" in summary and "text.minilm.last1" in summary
    a, b = sorted(groups)
    assert "paired" in run_ok(["compare", sweep, a, b, "--n-boot", "50"]).lower()


def test_from_scratch_lstm_and_cnn_train_with_late_fusion(tiny_data, tmp_path):
    out = run_ok([*base(tiny_data, tmp_path), "--out", tmp_path / "runs", "--fusion", "late",
                  "--image-encoder", "cnn", "--image-opt", "channels=[8,8,16,16]", "--image-opt", "size=32",
                  "--text-encoder", "lstm", "--text-opt", "embed_dim=8", "--text-opt", "hidden=8",
                  "--text-opt", "min_count=1", "--augment", "light", "--token-dropout", "0.1"])
    assert "image: --image-unfreeze all (default for cnn)" in out and "text: --text-unfreeze all" in out
    run = next((tmp_path / "runs").glob("ft-late-*"))
    exported = json.loads((run / "config.json").read_text())["finetune"]["exported"]
    assert set(exported) == {"image", "text"}


def test_augmentation_says_the_prefix_cannot_be_cached(tiny_data, tmp_path):
    out = run_ok([*base(tiny_data, tmp_path), "--out", tmp_path / "runs", "--fusion", "linear",
                  "--head-opt", "solver=adamw", "--image-encoder", "cnn", "--image-opt", "channels=[8,8,16,16]",
                  "--image-opt", "size=32", "--image-state-dict", _cnn_state(tmp_path), "--image-unfreeze", "all",
                  "--augment", "paper-001", "--max-epochs", "1"])
    assert "input: raw" in out
    out = run_ok([*base(tiny_data, tmp_path), "--out", tmp_path / "runs2", "--fusion", "linear",
                  "--head-opt", "solver=adamw", *TEXT, "--text-unfreeze", "last:1", "--token-dropout", "0.2",
                  "--max-epochs", "1"])
    assert "token dropout changes the input every epoch, so the frozen prefix cannot be cached" in out


def _cnn_state(tmp_path: Path) -> Path:
    import torch

    from extract.encoders import create_encoder

    enc = create_encoder("cnn", options={"channels": [8, 8, 16, 16], "size": 32})
    enc.build(torch.device("cpu"))
    path = tmp_path / "cnn.pt"
    torch.save(enc.model.state_dict(), path)
    return path


@pytest.mark.parametrize("extra, expect", [
    ([*IMAGE, "--image-unfreeze", "first:2", "--fusion", "linear"], "--image-unfreeze 'first:2'"),
    (["--text-encoder", "lstm", "--text-unfreeze", "last:1", "--fusion", "linear"], "trained from scratch"),
    ([*TEXT, "--text-field", "tagline", "--fusion", "linear"], "reads text field 'tagline'"),
    ([*TEXT], "fusion 'concat' needs 2 backbones"),
    ([*TEXT, "--image-encoder", "minilm"], "is a text encoder, not image"),
    (["--offline", *TEXT], "--offline swaps a recipe's backbones"),
    (["--recipe", "paper-999"], "Unknown recipe 'paper-999'"),
    ([*IMAGE, *TEXT, "--augment", "flip=2"], "flip must be in [0, 1]"),
])
def test_user_errors_are_one_line(tiny_data, tmp_path, extra, expect):
    run_refused([*base(tiny_data, tmp_path), "--out", tmp_path / "runs", *extra], expect)


def test_recipes_fill_defaults_and_swap_offline_encoders():
    from finetune.recipes import apply_recipe

    said: list[str] = []
    params = {"recipe": "seven-models-e2e", "offline": True, "batch_size": 8, "seed": [0]}
    members = apply_recipe(params, {"batch_size"}, said.append)
    assert len(members) == 7
    assert {m["batch_size"] for m in members} == {8}  # given on the command line: kept
    assert [m.get("text_encoder") for m in members] == ["lstm", "minilm", None, None, "minilm", "minilm", "minilm"]
    assert [m.get("image_encoder") for m in members][2:] == ["cnn", *["efficientnet-lite0"] * 4]
    assert any("distilbert -> minilm" in s for s in said)
    [p000] = apply_recipe({"recipe": "paper-000", "offline": False}, set(), said.append)
    assert (p000["text_unfreeze"], p000["warmup_epochs"], p000["plateau_factor"]) == ("last:2+stem", 3.0, 0.2)
