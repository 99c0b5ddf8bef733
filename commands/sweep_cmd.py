"""`sweep` (run an ablation grid, resumable, parallel, sharded) and `compare` (is A really better than B?)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import command_line, parse_kv, user_errors
from train_heads.fusion import list_fusions
from train_heads.losses import list_losses
from train_heads.sweep.presets import list_presets
from train_heads.thresholds import THRESHOLDS


@user_errors
def sweep(
    out: Annotated[Path, typer.Option("--out", help="Sweep folder: runs/, failed/, sweep.json, results.csv/json, summary.md.")],
    preset: Annotated[Optional[str], typer.Option(help="Named grid: " + ", ".join(list_presets()) + ".")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML grid file with feature_sets, fusions, head_options, heads, losses, thresholds, seeds, settings (see train_heads/sweep/grid.py).")] = None,
    feature_set: Annotated[Optional[list[str]], typer.Option("--feature-set", help="NAME=modality=<cache>,modality=<cache>,... repeatable: one grid axis value per feature set.")] = None,
    feature: Annotated[Optional[list[str]], typer.Option("--feature", "-f", help="modality=<cache or encoder>, repeatable: one feature set named after its modalities.")] = None,
    fusion: Annotated[Optional[list[str]], typer.Option(help="Head, repeatable (default: every head): " + ", ".join(list_fusions()) + ".")] = None,
    head_opt: Annotated[Optional[list[str]], typer.Option("--head-opt", "-o", help="Head option values to grid over, fusion:key=v1,v2 or key=v1,v2 (every head that has it), e.g. mcam_smsam:num_layers=1,4 or hidden=256; a bracketed list is one value: concat:hidden=[1024,512,256] (two: [1024,512],[256]).")] = None,
    loss: Annotated[Optional[list[str]], typer.Option(help="Loss with optional options name:k=v,k=v, repeatable, e.g. bce or focal:gamma=2,ls=0.1 (" + ", ".join(list_losses()) + ").")] = None,
    threshold: Annotated[Optional[list[str]], typer.Option(help="Threshold strategy, repeatable: " + ", ".join(sorted(THRESHOLDS)) + ".")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Seeds, e.g. 0,1,2 or 0-4 (default 0).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Shared head setting key=value, repeatable (max_epochs=50, lr=3e-4, warmup_epochs=1...).")] = None,
    jobs: Annotated[int, typer.Option(help="Runs in parallel (worker processes); each gets cores // jobs torch threads.")] = 1,
    shard: Annotated[Optional[str], typer.Option(help="Run only slice i of n (1-based), e.g. 2/4; shards may share the folder.")] = None,
    metric: Annotated[str, typer.Option(help="Test metric summary.md is sorted by.")] = "macro_f1",
    dry_run: Annotated[bool, typer.Option(help="List the runs (and those already done) without training.")] = False,
    collect: Annotated[bool, typer.Option(help="Only rebuild results.csv/json and summary.md from the run folders.")] = False,
    merge: Annotated[Optional[list[Path]], typer.Option(help="Copy finished runs of this sweep folder (e.g. a shard run elsewhere) into --out, repeatable; then collect.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Redo runs that failed before.")] = True,
    cache_dir: Annotated[str, typer.Option(help="Where encoder names in --feature are looked up.")] = "caches",
    quiet: Annotated[bool, typer.Option(help="No line per finished run.")] = False,
) -> None:
    """Train a grid of heads (feature sets x heads x losses x thresholds x seeds); resumable.

    Rerunning the same command skips finished runs and retries failed ones; with no grid
    flags it resumes the folder's recorded grid. SIGTERM or Ctrl-C stops the workers, keeps
    finished runs and exits 143 / 130; workers also exit by themselves if the sweep is killed."""
    from train_heads.sweep.aggregate import write_results
    from train_heads.sweep.grid import expand, parse_shard, select_shard
    from train_heads.sweep.execute import SweepInterrupted, run_sweep
    from train_heads.sweep.folder import SWEEP_JSON, is_done, merge_sweeps, read_sweep
    from train_heads.sweep.parse import assemble

    if merge:
        copied = merge_sweeps(out, list(merge))
        typer.echo(f"merged {len(copied)} finished runs into {out}")
        collect = True
    if collect:
        _print_results(write_results(out, metric))
        return
    shard_t = parse_shard(shard)
    # .get: a folder of finetune runs only (finetune --sweep-dir) has no head grid yet
    previous = read_sweep(out).get("grid") if (out / SWEEP_JSON).is_file() else None
    cfg = assemble(previous, preset, config, feature_set, feature, fusion, head_opt, loss, threshold, seeds,
                   parse_kv(set_, "--set"), cache_dir)
    if previous and not preset and not config:  # axes not given now come from the folder's last grid: say so
        kept = [f"{flag} {value}" for flag, given, value in (
            ("features", feature or feature_set, ",".join(cfg.feature_sets)),
            ("--fusion", fusion, ",".join(h.display for h in cfg.heads)),
            ("--loss", loss, ",".join(x.display for x in cfg.losses)),
            ("--threshold", threshold, ",".join(cfg.thresholds)),
            ("--seeds", seeds, ",".join(map(str, cfg.seeds)))) if not given]
        if kept:
            typer.echo(f"grid axes taken from {out / SWEEP_JSON} (this folder's previous grid): "
                       + "; ".join(kept) + " (give them on the command line to change them)")
    if dry_run:
        runs, skipped = expand(cfg, out)
        mine = select_shard(runs, shard_t)
        for r in mine:
            typer.echo(f"{'done ' if is_done(out, r.name) else 'todo '} {r.name}")
        for s in skipped:
            typer.echo(f"skip  {s['feature_set']} x {s['head']}: {s['reason']}")
        typer.echo(f"{len(mine)} runs{f' in shard {shard}' if shard else ''} of {len(runs)}; "
                   f"{sum(is_done(out, r.name) for r in mine)} done")
        return

    def show(res: dict, k: int, n: int) -> None:
        if quiet:
            return
        if res["status"] == "ok":
            typer.echo(f"[{k}/{n}] ok     {res['seconds']:6.1f}s  test macro-F1 {res['test_macro_f1']:.4f}  {res['name']}")
        else:
            typer.echo(f"[{k}/{n}] FAILED {res['name']}: {res['error'].splitlines()[0][:200]}")

    try:
        o = run_sweep(cfg, out, jobs=jobs, shard=shard_t, on_result=show, command=command_line(),
                      retry_failed=retry_failed, metric=metric)
    except SweepInterrupted as e:  # SIGTERM/SIGINT: workers stopped, finished runs kept
        typer.echo(str(e), err=True)
        raise typer.Exit(e.exit_code) from None
    for s in o.skipped:
        typer.echo(f"skipped {s['feature_set']} x {s['head']}: {s['reason']}")
    typer.echo(f"{o.selected} runs{f' (shard {shard} of {o.total})' if shard else ''}: {len(o.already_done)} "
               f"already done, {len(o.done)} trained, {len(o.failed)} failed in {o.seconds:.1f}s")
    _print_results({"csv": out / "results.csv", "summary": out / "summary.md"})
    if o.failed:
        typer.echo(f"error: {len(o.failed)} runs failed (details in {out / 'failed'}); rerun the same command "
                   "to retry them", err=True)
        raise typer.Exit(1)


def _print_results(paths: dict[str, Path]) -> None:
    typer.echo(f"results: {paths['csv']}  summary: {paths['summary']}")
    lines = paths["summary"].read_text().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    typer.echo("\n".join(table[:12]))


@user_errors
def compare(
    targets: Annotated[list[str], typer.Argument(help="SWEEP_DIR A B (configurations: group names from summary.md, or unique parts of them), or RUN_A RUN_B (two run folders).")],
    metric: Annotated[str, typer.Option(help="Test metric (bootstrap: macro_f1, micro_f1, weighted_f1, samples_f1).")] = "macro_f1",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of the test movies.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
    b_sweep: Annotated[Optional[Path], typer.Option("--b-sweep", help="Take configuration B from this other sweep folder (same caches and seeds).")] = None,
) -> None:
    """Paired comparison of two configurations: mean difference, paired t-test over seeds,
    paired bootstrap over test movies (recomputed from the saved test predictions)."""
    import json

    from train_heads.sweep.compare import compare_groups, compare_runs, format_comparison

    if n_boot < 1:
        raise ValueError(f"--n-boot must be >= 1, got {n_boot}")
    if len(targets) == 3:
        res = compare_groups(targets[0], targets[1], targets[2], metric, n_boot, seed, b_sweep)
    elif b_sweep is not None:
        raise ValueError("--b-sweep goes with SWEEP_DIR A B, not with two run folders")
    elif len(targets) == 2:
        a, b = Path(targets[0]), Path(targets[1])
        res = compare_runs({0: a}, {0: b}, metric, n_boot, seed)
        res["a"], res["b"] = str(a), str(b)
    else:
        raise ValueError(f"compare takes SWEEP_DIR A B or RUN_A RUN_B, got {len(targets)} arguments")
    typer.echo(format_comparison(res))
    if json_out:
        json_out.write_text(json.dumps(res, indent=1) + "\n")
