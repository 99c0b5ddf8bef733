"""`report`: PNG figures and a Markdown page for one run, a folder of runs, or a sweep.

    res = build_report("sweeps/x", out="sweeps/x/report", top=4)
    res.figures["per_genre_f1"]["data"]     # the numbers drawn, also in per_genre_f1.json

Figures (each `<name>.png` + `<name>.json` with exactly the plotted data):
    summary_<metric>      sweeps: mean ± std over seeds per configuration
    per_genre_f1          test F1 per genre of the chosen runs side by side (per_genre.csv)
    preference_<k>        GMU / MoE gates: share of test movies per true genre whose mean gate
                          favours each modality (the per-genre analysis of Arevalo et al.
                          2017, arXiv:1702.01992); tied GMU gate z weighs the first modality
                          in sorted order, it "favours" it when mean_h z > 0.5
    modality_weights      late-fusion alpha and mean per-row modality weights / MoE gates
    attention             mean modality-token self-attention (swiglu_attn "attn")
    training_curves       train loss and dev macro-F1 per epoch (history.json)
    cooccurrence          genre co-occurrence over the data set (cache labels when the cache
                          file is reachable, else the y columns of dev + test predictions)
    threshold_f1          dev and test macro-F1 vs one global threshold (thresholds.threshold_curve)
    reliability           reliability diagram of the pooled test probabilities, before and after a
                          temperature T fitted on dev; with the ECE tables (per genre and pooled,
                          dev and test; Guo et al. 2017 Eq. 3 and Sec. 4.2)
    roc, pr               per-genre test ROC and precision-recall curves with ROC-AUC / average
                          precision (paper 001's per-genre curves), and their table
Runs are chosen with `picks` (run names, group names or unique parts of them) or as the best
run (lowest seed) of the `top` configurations by test `metric`; gate and weight analyses also
use the best run of every head that saved such internals.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from train_heads.calibration import DEFAULT_BINS
from train_heads.report import calibration_plots, plots
from train_heads.report.calibration_data import auc_table, calibration_data, ece_tables, roc_pr_data
from train_heads.report.data import (GATE_KINDS, fusion_of, per_genre_table, pref_table, with_explain,
                                     attention_data, cooccurrence_data, curve_data, gate_preference,
                                     modality_weight_data, per_genre_data, threshold_data)
from train_heads.runs import json_default


@dataclass
class ReportResult:
    out: Path
    markdown: Path
    runs: list[Path]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {png, json, data}


def _is_run(p: Path) -> bool:
    return (p / "metrics.json").is_file() and (p / "config.json").is_file()


def resolve_runs(target: str | Path, picks: list[str] | None = None, top: int = 4,
                 metric: str = "macro_f1") -> tuple[list[Path], list[Path], dict[str, Any] | None]:
    """(chosen runs, all finished runs, sweep summary or None) for a run, runs folder or sweep."""
    target = Path(target)
    if _is_run(target):
        return [target], [target], None
    summary = None
    if (target / "sweep.json").is_file():
        from train_heads.sweep.aggregate import collect_rows, summarize

        rows = [r for r in collect_rows(target) if r["status"] == "ok"]
        summary = {"metric": metric, "groups": summarize(rows, metric)} if rows else None
        ranked = [target / "runs" / r["name"] for g in (summary or {"groups": []})["groups"]
                  for r in sorted((x for x in rows if x["group"] == g["group"]), key=lambda x: x["seed"])]
    elif target.is_dir():
        runs = [p for p in sorted(target.iterdir()) if _is_run(p)]
        key = lambda p: -(json.loads((p / "metrics.json").read_text())["test"].get(metric) or 0.0)  # noqa: E731
        ranked = sorted(runs, key=key)
    else:
        raise FileNotFoundError(f"{target} is not a run folder, a folder of runs or a sweep folder")
    if not ranked:
        raise FileNotFoundError(f"{target} holds no finished run (no */metrics.json); run train-head or sweep first")
    group = (lambda p: p.name.rsplit("-s", 1)[0]) if summary else (lambda p: p.name)
    if picks:
        chosen = [_pick(ranked, q, group) for q in picks]
    else:  # ranked: best configuration first, lowest seed first within it
        chosen = [p for k, p in enumerate(ranked) if group(p) not in {group(x) for x in ranked[:k]}][:max(1, top)]
    return chosen, ranked, summary


def _pick(ranked: list[Path], q: str, group: Callable[[Path], str]) -> Path:
    """A run named q, the best-ranked run of group q, or of the one group whose names contain q."""
    for match in (lambda p: p.name == q, lambda p: group(p) == q, lambda p: q in p.name):
        hits = [p for p in ranked if match(p)]
        if len({group(p) for p in hits}) > 1:
            raise ValueError(f"--run {q!r} matches several configurations "
                             f"({[p.name for p in hits[:4]]}...); give more of the name")
        if hits:
            return hits[0]
    raise ValueError(f"--run {q!r} matches no finished run; names are in results.csv / `runs ls`")


def build_report(target: str | Path, out: str | Path | None = None, picks: list[str] | None = None,
                 top: int = 4, metric: str = "macro_f1", ece_bins: int = DEFAULT_BINS,
                 temperature: bool = True) -> ReportResult:
    """Write the figures, their JSON data and report.md; returns what was written.
    ``ece_bins``: equal-width bins of the ECE and reliability diagram; ``temperature``:
    also fit T on each run's dev probabilities and show ECE after scaling."""
    if int(ece_bins) < 1:
        raise ValueError(f"--ece-bins must be >= 1, got {ece_bins}")
    chosen, ranked, summary = resolve_runs(target, picks, top, metric)
    out = Path(out) if out else Path(target) / "report"
    out.mkdir(parents=True, exist_ok=True)
    res = ReportResult(out, out / "report.md", chosen)
    md = [f"# Report: {Path(target).name}", "",
          "Runs shown: " + ", ".join(f"`{p.name}`" for p in chosen), ""]

    def fig(name: str, data: dict[str, Any], draw: Callable[[dict[str, Any], Path], Path], caption: str) -> None:
        png, js = out / f"{name}.png", out / f"{name}.json"
        js.write_text(json.dumps(data, indent=1, default=json_default) + "\n")
        draw(data, png)
        res.figures[name] = {"png": png, "json": js, "data": data}
        md.extend([f"## {caption}", "", f"![{name}]({png.name})", ""])

    if summary:
        gs = [g for g in summary["groups"] if (g.get(f"test_{metric}") or {}).get("mean") is not None][:30]
        fig(f"summary_{metric}", {"metric": metric, "groups": [g["group"] for g in gs],
                                  "mean": [g[f"test_{metric}"]["mean"] for g in gs],
                                  "std": [g[f"test_{metric}"]["std"] for g in gs],
                                  "n": [g["n_ok"] for g in gs]}, plots.summary_bars,
            f"Test {metric} per configuration (mean ± std over seeds)")
    pg = per_genre_data(chosen)
    fig("per_genre_f1", pg, plots.per_genre_f1, "Per-genre test F1")
    md += [per_genre_table(pg), ""]
    explain_runs = with_explain(chosen, ranked)
    for k, run in enumerate(r for r in explain_runs if fusion_of(r) in GATE_KINDS):
        data = gate_preference(run)
        if data:
            fig(f"preference_{k}", data, plots.modality_preference,
                f"Which modality the {data['kind']} favours, per genre ({run.name})")
            md += [pref_table(data), ""]
    weights = modality_weight_data(explain_runs)
    if weights["items"]:
        fig("modality_weights", weights, plots.modality_weights, "Modality weights (late-fusion alpha, gates)")
        md += ["| run | weights | mean per modality |", "|---|---|---|"]
        md += [f"| {i['run']} | {i['label']} | " + ", ".join(f"{m} {v:.3f}" for m, v in zip(i["modalities"], i["mean"]))
               + " |" for i in weights["items"]] + [""]
    att = attention_data(explain_runs)
    if att["items"]:
        fig("attention", att, plots.attention_maps, "Self-attention between modality tokens")
    if att["summaries"]:
        md += ["| run | attention | shape | mean max weight | mean entropy (nats) |", "|---|---|---|---:|---:|"]
        md += [f"| {s['run']} | {s['key']} | {s['shape']} | {s['max']:.3f} | {s['entropy']:.3f} |"
               for s in att["summaries"]] + [""]
    missing = missing_data(chosen)
    if missing:  # `evaluate --missing` results saved in the runs' missing/ folders
        fig("missing_modalities", {"evaluations": missing}, _missing_figure,
            "Test macro-F1 vs the share of test rows missing a modality (evaluate --missing)")
    fig("training_curves", curve_data(chosen), plots.training_curves, "Training curves")
    fig("cooccurrence", cooccurrence_data(chosen[0]), plots.cooccurrence, "Genre co-occurrence")
    fig("threshold_f1", threshold_data(chosen), plots.threshold_curves, "Macro-F1 vs a global threshold")
    cal = calibration_data(chosen, ece_bins, temperature)
    md += ["## Calibration (expected calibration error)", "", ece_tables(cal), ""]
    fig("reliability", cal, calibration_plots.reliability, "Reliability diagram (test, all genres pooled)")
    roc, pr = roc_pr_data(chosen)
    fig("roc", roc, calibration_plots.roc_curves, "Per-genre ROC curves (test)")
    fig("pr", pr, calibration_plots.pr_curves, "Per-genre precision-recall curves (test)")
    md += ["ROC-AUC and average precision per genre (test):", "", auc_table(roc, pr), ""]
    res.markdown.write_text("\n".join(md) + "\n")
    return res




def missing_data(runs: list[Path]) -> list[dict[str, Any]]:
    """Every `evaluate --missing` result saved under the runs' missing/ folders (seed 0 first)."""
    out = []
    for run in runs:
        for f in sorted((run / "missing").glob("*.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
    return out


def _missing_figure(data: dict[str, Any], png: Path) -> Path:
    from train_heads.report.missing_plot import plot_missing

    return plot_missing(data["evaluations"], png)
