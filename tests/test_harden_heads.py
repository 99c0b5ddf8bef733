"""Issue 9 hardening of head training: run folders, head options, run names, `runs ls`,
single-label data, --standardize and the linear head's L-BFGS solver."""
from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401
from cli import app

runner = CliRunner()
FAST = ["--max-epochs", "3", "--patience", "2", "--quiet"]


def _run(args: list) -> tuple[int, str]:
    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.output


def _ok(args: list) -> str:
    code, out = _run(args)
    assert code == 0, out
    return out


def _error(args: list, *expect: str) -> str:
    """A user error: exit 2 and exactly one `error:` line holding every `expect`."""
    code, out = _run(args)
    assert code == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    for e in expect:
        assert e in errors[0], out
    return errors[0]


def _feats(caches: dict[str, Path], *mods: str) -> list[str]:
    return [x for m in mods for x in ("-f", f"{m}={caches[m]}")]


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call to train() fails the test: what is refused must be refused before training."""
    import train_heads.train

    def boom(*a, **kw):
        raise AssertionError("training started although the input should have been refused first")

    monkeypatch.setattr(train_heads.train, "train", boom)


def _stray(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp-" in p.name or ".old-" in p.name] if folder.exists() else []


# ---- item 11: filesystem errors are one line, checked before training, nothing left behind ----
def test_disk_full_while_writing_run_leaves_no_temp_folder(tiny_caches, tmp_path, monkeypatch) -> None:
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "runs"
    line = _error(["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "concat", "--out", out, *FAST],
                  "No space left on device", str(out))
    assert "free some space" in line
    assert _stray(out) == [] and not [p for p in out.iterdir() if p.is_dir()]


def test_write_error_keeps_the_previous_run(tiny_caches, tmp_path, monkeypatch) -> None:
    args = ["train-head", *_feats(tiny_caches, "image"), "--fusion", "linear", "--out", tmp_path,
            "--name", "r", *FAST]
    _ok(args)
    before = (tmp_path / "r" / "metrics.json").read_text()
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    _error(args + ["--force"], "full")
    assert (tmp_path / "r" / "metrics.json").read_text() == before and _stray(tmp_path) == []


def test_out_that_is_a_file_is_refused_before_training(tiny_caches, tmp_path, no_training) -> None:
    f = tmp_path / "runs.txt"
    f.write_text("not a folder")
    _error(["train-head", *_feats(tiny_caches, "image"), "--fusion", "linear", "--out", f], str(f), "Not a directory")
    _error(["train-head", *_feats(tiny_caches, "image"), "--fusion", "linear", "--out", f / "sub"], str(f))


def test_unwritable_out_is_refused_before_training(tiny_caches, tmp_path, monkeypatch, no_training) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    args = ["train-head", *_feats(tiny_caches, "image"), "--fusion", "linear", "--out", out]
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == out else real_access(p, mode, **kw))
    _error(args, str(out), "Permission denied")
    monkeypatch.setattr(os, "access", real_access)

    import tempfile

    def read_only(*a, **kw):  # root ignores permissions: a read-only mount shows up in the probe
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(kw.get("dir", "?"), ".probe"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    _error(args, str(out), "read-only")
    # A folder that does not exist yet is checked where it will be created.
    _error(["train-head", *_feats(tiny_caches, "image"), "--fusion", "linear", "--out", out / "new"], str(out))
    assert list(out.iterdir()) == []


# ---- item 15: modality names, head options, existing run folders ----------------------------
def test_feature_name_must_match_cache_modality(tiny_caches, tmp_path) -> None:
    _error(["train-head", "-f", f"text={tiny_caches['image']}", "--fusion", "linear", "--out", tmp_path, *FAST],
           "image features", "image=")
    _error(["train-head", "-f", f"image={tiny_caches['text']}", "-f", f"text={tiny_caches['image']}",
            "--out", tmp_path, *FAST], "features")
    assert not list(tmp_path.iterdir())
    # Names that are not modality kinds are free.
    out = _ok(["train-head", "-f", f"poster={tiny_caches['image']}", "--fusion", "linear", "--out", tmp_path, *FAST])
    assert "linear-poster.toy-image-" in out


@pytest.mark.parametrize("fusion,opt,expect", [
    ("gmu", "hiden=8", ["hiden", "hidden=512", "gate="]),  # unknown key: lists the valid options
    ("gmu", "hidden=abc", ["hidden='abc'", "expected int"]),
    ("mlp", "hidden=2.5", ["hidden=2.5", "expected int"]),
    ("gmu", "hidden=0", ["hidden=0", ">= 1"]),
    ("concat", "hidden=-4", ["hidden=-4", ">= 1"]),
    ("mcam_smsam", "num_layers=0", ["num_layers=0", ">= 1"]),
    ("gmu", "dropout=-0.1", ["dropout=-0.1", "[0, 1)"]),
    ("late", "dropout=1", ["dropout=1", "[0, 1)"]),
    ("moe", "tied=maybe", ["tied='maybe'", "expected bool"]),
    ("cross_attention", "d_model=30", ["d_model=30", "num_heads=8"]),
    ("linear", "solver=sgd", ["solver='sgd'", "lbfgs"]),
    ("linear", "C=0", ["C=0", "C > 0"]),
    ("linear", "solver=adamw,C=0.5", ["C=0.5", "solver=lbfgs"]),
])
def test_head_options_are_checked_before_training(tiny_caches, tmp_path, no_training, fusion, opt, expect) -> None:
    mods = ("image",) if fusion == "linear" else ("image", "text")
    opts = [x for o in opt.split(",") for x in ("-o", o)]
    _error(["train-head", *_feats(tiny_caches, *mods), "--fusion", fusion, *opts, "--out", tmp_path], *expect)
    assert not list(tmp_path.iterdir())


def test_validate_options_accepts_every_heads_defaults() -> None:
    from train_heads.fusion import FUSIONS, head_options, validate_options

    for name in FUSIONS:
        validate_options(name, {})
        validate_options(name, {k: p.default for k, p in head_options(name).items() if p.default is not None})
    validate_options("mlp", {"layers": 0, "dropout": 0})  # layers=0 is logistic; an int dropout is fine
    with pytest.raises(ValueError, match="no option"):
        from train_heads.config import HeadConfig

        HeadConfig(features={"image": "x.h5"}, fusion="gmu", fusion_kw={"nope": 1})  # sweep builds these too


def test_same_settings_are_up_to_date_and_force_retrains(tiny_caches, tmp_path, monkeypatch) -> None:
    args = ["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "concat", "--out", tmp_path, *FAST]
    first = _ok(args)
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    metrics = (run / "metrics.json").read_text()
    import train_heads.train

    real_train = train_heads.train.train
    calls: list[int] = []
    monkeypatch.setattr(train_heads.train, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    out = _ok(args)
    assert out.strip() == f"up to date: {run} (same settings already trained; --force to retrain)", out
    assert not calls and "best epoch" in first
    _ok(args + ["--force"])
    assert calls == [1] and (run / "metrics.json").read_text() == metrics  # same seed, same numbers
    # The same --name with other settings: refused unless --force.
    _ok(args + ["--name", "mine"])
    _error(args + ["--name", "mine", "--seed", "1"], "mine", "different settings", "--force")
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["config"]["seed"] == 0
    _ok(args + ["--name", "mine", "--seed", "1", "--force"])
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["config"]["seed"] == 1
    # A folder of that name that is not a finished run is not overwritten silently either.
    (tmp_path / "junk").mkdir()
    _error(args + ["--name", "junk"], "junk", "not a finished run")
    _error(args + ["--name", "../escape"], "--name")


# ---- item 17: run names with encoders, runs ls columns ---------------------------------------
def test_default_names_include_encoders_and_runs_ls_shows_them(tiny_caches, tmp_path) -> None:
    _ok(["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "gmu", "--out", tmp_path, *FAST])
    _ok(["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "linear", "-o", "modality=text",
         "--out", tmp_path, *FAST])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0].startswith("gmu-image.toy-image+text.tfidf-bce-per_class-s0-"), names
    assert names[1].startswith("linear-text.tfidf-bce-per_class-s0-"), names
    lines = _ok(["runs", "ls", tmp_path]).splitlines()
    assert lines[0].split() == ["macro-F1", "micro-F1", "head", "features", "run"]
    gmu = next(line for line in lines if line.rstrip().endswith(names[0]))
    m = json.loads((tmp_path / names[0] / "metrics.json").read_text())["test"]
    assert gmu.split()[:4] == [f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", "gmu", "image=toy-image,text=tfidf"]
    assert "linear(modality=text)" in next(line for line in lines if names[1] in line)


def test_sweep_run_names_are_unchanged(tiny_caches, tmp_path) -> None:
    """sweep names its runs itself (readable part + group hash + seed): the encoder-bearing
    default name must not leak into sweeps, which skip finished runs by name."""
    from train_heads.sweep import HeadSpec, SweepConfig, expand

    cfg = SweepConfig(feature_sets={"full": {"image": str(tiny_caches["image"]), "text": str(tiny_caches["text"])}},
                      heads=[HeadSpec("gmu", {"hidden": 8})], seeds=[0])
    (run,) = expand(cfg, tmp_path)[0]
    assert run.name.startswith("full-gmu.hidden=8-bce-per_class-") and run.cfg.name == run.name


# ---- item 19: single-label data sets ---------------------------------------------------------
def _table(path: Path, genres_of) -> Path:
    """A tiny CSV: 60 rows, plots whose words depend on the genre, a fixed split."""
    rng = np.random.default_rng(0)
    vocab = {"Horror": "ghost blood scream haunted night", "Comedy": "laugh joke silly party funny",
             "": "town day road family house"}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "plot", "genre", "split"])
        for i in range(60):
            g = genres_of(i)
            w.writerow([f"m{i}", " ".join(rng.choice(vocab[g].split(), 8)), g,
                        ("train", "train", "train", "dev", "test")[i % 5]])
    return path


@pytest.mark.parametrize("kind", ["one-genre", "one-label-per-row"])
def test_single_label_data_trains_end_to_end(tmp_path, kind) -> None:
    genres_of = (lambda i: "Horror" if i % 2 else "") if kind == "one-genre" else \
        (lambda i: "Horror" if i % 2 else "Comedy")
    data = _table(tmp_path / "t.csv", genres_of)
    _ok(["extract", "--data", data, "--format", "table", "--id-col", "id", "--text-col", "plot", "--label-col",
         "genre", "--split-col", "split", "--labels", "data", "--encoder", "tfidf", "-o", "min_df=1",
         "--out", tmp_path / "c", "--workers", "0"])
    cache = next((tmp_path / "c").glob("*.h5"))
    out = _ok(["train-head", "-f", f"text={cache}", "--fusion", "linear", "--out", tmp_path / "runs",
               "--name", "r", "--max-epochs", "20", "--quiet"])
    assert "test macro-F1" in out
    m = json.loads((tmp_path / "runs/r/metrics.json").read_text())
    assert m["test"]["n_classes"] == (1 if kind == "one-genre" else 2)
    assert m["test"]["macro_f1"] > 0.5 and m["test"]["samples_f1"] is not None
    assert "r" in _ok(["runs", "ls", tmp_path / "runs"]) and "Horror" in _ok(["runs", "show", tmp_path / "runs/r"])


def test_metrics_with_one_genre_match_the_binary_definitions() -> None:
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

    from train_heads.metrics import compute_metrics, per_class_table

    rng = np.random.default_rng(1)
    y = (rng.random((40, 1)) < 0.4).astype(np.uint8)
    p = np.clip(y * 0.3 + rng.random((40, 1)) * 0.7, 0, 1)
    pred = (p >= 0.5).astype(np.uint8)
    m = compute_metrics(y, p, pred, ["g"])
    f1 = f1_score(y[:, 0], pred[:, 0])  # F1 of the genre, not averaged over the values 0 and 1
    assert m["macro_f1"] == pytest.approx(f1) and m["micro_f1"] == pytest.approx(f1)
    assert m["weighted_f1"] == pytest.approx(f1)
    assert m["macro_precision"] == pytest.approx(precision_score(y[:, 0], pred[:, 0]))
    assert m["macro_recall"] == pytest.approx(recall_score(y[:, 0], pred[:, 0]))
    assert m["macro_roc_auc"] == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]))
    assert m["macro_map"] == pytest.approx(average_precision_score(y[:, 0], p[:, 0]))
    hit = (y[:, 0] == 1) & (pred[:, 0] == 1)  # samples-F1: 1 where the one genre is found, else 0
    assert m["samples_f1"] == pytest.approx(hit.mean())
    (row,) = per_class_table(y, pred, ["g"], probs=p)
    assert row["f1"] == pytest.approx(f1) and row["support"] == int(y.sum())


# ---- item 21: --standardize / --no-standardize -------------------------------------------------
def test_standardize_flag(tiny_caches, tmp_path) -> None:
    base = ["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "concat", "--out", tmp_path, *FAST]
    _ok(base + ["--name", "z", "--standardize"])
    _ok(base + ["--name", "raw", "--no-standardize"])
    assert json.loads((tmp_path / "z/config.json").read_text())["config"]["standardize"] is True
    assert json.loads((tmp_path / "raw/config.json").read_text())["config"]["standardize"] is False
    assert torch.load(tmp_path / "raw/head.pt", weights_only=False)["norm"] == {}
    assert set(torch.load(tmp_path / "z/head.pt", weights_only=False)["norm"]) == {"image", "text"}
    assert "--standardize" in _ok(["train-head", "--help"])


# ---- item 22: the linear head's L-BFGS solver is sklearn's logistic regression ---------------
def test_lbfgs_linear_head_matches_sklearn_logistic_regression() -> None:
    """Run to convergence, -o solver=lbfgs -o C=c minimises sklearn's LogisticRegression(C=c)
    objective per genre (scaled by 1/(n K)): same weights, so same probabilities."""
    from sklearn.linear_model import LogisticRegression

    from cache.features import FeatureSet
    from train_heads.fusion import create_fusion
    from train_heads.losses import create_loss
    from train_heads.train import _lbfgs

    g = torch.Generator().manual_seed(0)
    n, d, k, C = 200, 6, 3, 0.3
    X = torch.randn(n, d, generator=g)
    Y = (X @ torch.randn(d, k, generator=g) + 0.5 * torch.randn(n, k, generator=g) > 0).float()
    fs = FeatureSet(np.arange(n).astype(str), np.array(["train"] * n), ["a", "b", "c"], Y, {"x": X},
                    {"x": torch.ones(n, dtype=torch.bool)})
    head = create_fusion("linear", {"x": d}, k, solver="lbfgs", C=C)
    epoch = _lbfgs(head, fs, torch.arange(n), create_loss("bce"))
    for _ in range(20):
        epoch()
    for c in range(k):
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X.numpy(), Y[:, c].numpy())
        np.testing.assert_allclose(head.net.weight[c].detach().numpy(), ref.coef_[0], atol=1e-3)  # a 3x wrong C: 1.06
        np.testing.assert_allclose(head.net.bias[c].item(), ref.intercept_[0], atol=1e-3)


def test_linear_head_defaults_to_lbfgs_and_says_so(tiny_caches, tmp_path) -> None:
    base = ["train-head", *_feats(tiny_caches, "text"), "--fusion", "linear", "--out", tmp_path,
            "--max-epochs", "10", "--quiet"]
    out = _ok(base + ["--name", "default"])
    assert "solver lbfgs" in out and "--lr" in out  # the decision is printed, with the flags it ignores
    _ok(base + ["--name", "explicit", "-o", "solver=lbfgs"])
    out = _ok(base + ["--name", "adamw", "-o", "solver=adamw"])
    assert "solver lbfgs" not in out
    hist = {n: json.loads((tmp_path / n / "history.json").read_text()) for n in ("default", "explicit", "adamw")}
    assert hist["default"] == hist["explicit"] != hist["adamw"]
    assert all(h["lr"] == 1.0 for h in hist["default"])  # L-BFGS epochs, not AdamW's lr 1e-3


# ---- loss options, a modality no train row has, the same cache twice (adversarial pass) ---------
@pytest.mark.parametrize("loss,opt,expect", [
    ("focal", "gamma=abc", ["gamma='abc'", "not a finite number"]),  # was a TypeError traceback in losses.py
    ("focal", "gamma=true", ["gamma=True", "not a finite number"]),
    ("focal", "gamma=NaN", ["gamma=nan", "not a finite number"]),
    ("focal", "gamma=-1", ["gamma must be >= 0"]),
    ("focal", "alpha=2", ["alpha must be in [0, 1]"]),
    ("focal", "beta=1", ["no option(s) ['beta']"]),
    ("asl", "clip=1", ["clip must be in [0, 1)"]),
    ("asl", "gamma_neg=[1]", ["gamma_neg=[1]", "not a finite number"]),
])
def test_bad_loss_options_are_one_line_before_training(tiny_caches, tmp_path, no_training, loss, opt,
                                                       expect) -> None:
    line = _error(["train-head", *_feats(tiny_caches, "text"), "--fusion", "linear", "--loss", loss,
                   "--loss-opt", opt, "--out", tmp_path, *FAST], *expect)
    from train_heads.losses import loss_options

    assert f"loss {loss!r} options: " in line and all(k in line for k in loss_options(loss))  # lists them
    assert not list(tmp_path.iterdir())


def test_good_loss_options_still_pass() -> None:
    from train_heads.config import HeadConfig

    HeadConfig(features={"t": "x.h5"}, loss="focal", loss_kw={"alpha": None, "gamma": 0})
    HeadConfig(features={"t": "x.h5"}, loss="focal", loss_kw={"alpha": -1, "gamma": 1.5})  # negative: alpha off
    HeadConfig(features={"t": "x.h5"}, loss="asl", loss_kw={"gamma_pos": 1, "gamma_neg": 4, "clip": 0, "eps": 1e-6})
    HeadConfig(features={"t": "x.h5"}, loss="wbce")


def test_sweep_refuses_a_bad_loss_grid_before_any_run(tiny_caches, tmp_path) -> None:
    sweep = tmp_path / "sw"
    _error(["sweep", "--out", sweep, *_feats(tiny_caches, "text"), "--fusion", "linear",
            "--loss", "bce", "--loss", "focal:gamma=abc", "--seeds", "0"], "gamma='abc'", "loss 'focal' options")
    assert not [p for p in sweep.rglob("*") if p.name in ("metrics.json", "config.json")]


@pytest.fixture(scope="module")
def posterless_cache(tmp_path_factory) -> Path:
    """A toy-image cache of a data set whose posters are all gone (as with a wrong --image-dir)."""
    from extract.datasets import DatasetConfig
    from extract.demo_data import make_demo_dataset
    from extract.run import ExtractConfig, run_extract

    root = make_demo_dataset(tmp_path_factory.mktemp("noposters") / "data", n=40, seed=2)
    for p in root.rglob("*"):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
            p.unlink()
    res = run_extract(ExtractConfig(dataset=DatasetConfig(path=root, format="mmimdb"), encoder="toy-image",
                                    out=tmp_path_factory.mktemp("nc"), workers=0), progress=False)
    assert res.missing == {"image_file_missing": 40}
    return res.path


@pytest.mark.parametrize("standardize", ["--standardize", "--no-standardize"])
def test_modality_with_no_train_row_is_refused(posterless_cache, tmp_path, standardize) -> None:
    """Used to train with `std(): degrees of freedom is <= 0`, learn nothing from the images,
    and write a run whose predictions were NaN."""
    line = _error(["train-head", "-f", f"image={posterless_cache}", "--fusion", "linear", standardize,
                   "--out", tmp_path, *FAST],
                  f"{posterless_cache}: no train row has image features (24 of 24 missing; "
                  "in the whole cache: image_file_missing=40)", "check the extract command")
    assert "nan" not in line.lower()
    assert not list(tmp_path.glob("*/metrics.json"))


def test_standardize_refuses_fewer_than_two_present_train_rows(tiny_caches) -> None:
    from cache.features import load_features
    from cache.store import CacheError
    from train_heads.config import HeadConfig
    from train_heads.train import train

    fs = load_features({"image": tiny_caches["image"]})
    rows = fs.rows("train")
    keep = rows[fs.present["image"][rows]][0]
    fs.present["image"][rows[rows != keep]] = False  # one present train row: its std would be NaN
    with pytest.raises(CacheError, match=r"only 1 train row\(s\) have image features .*>= 2 train rows"):
        fs.standardize(rows)
    cfg = HeadConfig(features={"image": str(tiny_caches["image"])}, fusion="linear", max_epochs=1)
    with pytest.raises(CacheError, match="only 1 train row"):
        train(cfg, fs, progress=False)
    train(HeadConfig(**{**cfg.__dict__, "standardize": False}), fs, progress=False)  # 1 row is enough without


def test_the_same_cache_under_two_names_is_refused(tiny_caches, tmp_path, no_training, monkeypatch) -> None:
    text = tiny_caches["text"]
    link = tmp_path / "link.h5"
    link.symlink_to(text)
    monkeypatch.chdir(text.parent)
    for other in (text, text.name, link):  # same path, a relative path, a symlink
        _error(["train-head", "-f", f"text={text}", "-f", f"text2={other}", "--fusion", "concat",
                "--out", tmp_path / "runs"], "text= and text2= are the same cache", str(text.resolve()))
    assert not (tmp_path / "runs").exists()


def test_standardize_auto_keeps_sparse_features_raw(tiny_caches, tmp_path) -> None:
    """Default: dense modalities are z-scored, sparse ones (TF-IDF: over half zeros) keep raw
    values, and the choice is printed and recorded; the flags still force either way."""
    base = ["train-head", *_feats(tiny_caches, "image", "text"), "--fusion", "concat", "--out", tmp_path, *FAST]
    out = _ok(base + ["--name", "auto"])
    assert "standardize (auto): z-scored image; kept raw (sparse: over half zeros) text" in out
    assert json.loads((tmp_path / "auto/config.json").read_text())["standardized"] == {"image": True, "text": False}
    assert set(torch.load(tmp_path / "auto/head.pt", weights_only=False)["norm"]) == {"image"}
    _ok(base + ["--name", "all", "--standardize"])
    assert json.loads((tmp_path / "all/config.json").read_text())["standardized"] == {"image": True, "text": True}
