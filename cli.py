"""mmgenre command line: the typer app. Each command group lives in commands/<group>.py.

Run as `python cli.py ...` from the repo root or as the installed `mmgenre` script.
User errors (bad flags, missing files, mismatched caches) print one line and exit 2.
"""
from __future__ import annotations

import typer

from commands import cache_cmd, demo_cmd, extract_cmd, predict_cmd, runs_cmd, train_cmd
from commands import report_cmd, sweep_cmd
from commands import ensemble_cmd
from commands import gmu_synthetic_cmd
from commands import finetune_cmd
from commands import ocr_cmd
from commands import evaluate_cmd

# Plain click help (rich_markup_mode=None): rich's option table cuts long option names
# ("--label-smoothi…") on terminals under ~100 columns; click's layout wraps the help text
# instead and never shortens a flag.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Multimodal movie-genre classification: cached features, light fusion heads.")
app.command("extract")(extract_cmd.extract)
app.command("train-head")(train_cmd.train_head)
app.command("finetune")(finetune_cmd.finetune)
app.command("predict")(predict_cmd.predict)
app.command("demo")(demo_cmd.demo)
app.command("sweep")(sweep_cmd.sweep)
app.command("compare")(sweep_cmd.compare)
app.command("report")(report_cmd.report)
app.command("ensemble")(ensemble_cmd.ensemble)
app.command("gmu-synthetic")(gmu_synthetic_cmd.gmu_synthetic)
app.command("ocr")(ocr_cmd.ocr)
app.command("evaluate")(evaluate_cmd.evaluate)
app.add_typer(cache_cmd.app, name="cache", help="List, inspect and verify feature caches.")
app.add_typer(runs_cmd.app, name="runs", help="List and show run folders.")

if __name__ == "__main__":
    app()
