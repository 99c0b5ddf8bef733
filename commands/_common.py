"""Shared CLI plumbing: one-line user errors, data set options."""
from __future__ import annotations

import functools
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, UnicodeDecodeError, OSError)


def error_line(e: BaseException) -> str:
    """One line for a user error; a filesystem error names its path and what to do."""
    if isinstance(e, UnicodeDecodeError):
        return f"input is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 and retry"
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename:
        from cache.store import FS_HINTS

        hint = FS_HINTS.get(e.errno or 0, "check the path")
        return f"{e.filename}: {e.strerror or e}; {hint}"
    msg = e.args[0] if isinstance(e, KeyError) and e.args else e
    return " ".join(str(msg).split("\n"))  # always one line


class _Stopped(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so `finally` blocks and temp-file cleanups run."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stopped()


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library ValueError/OSError/... into one line on stderr and exit code 2, and
    Ctrl-C / SIGTERM into one line and exit 130 / 143 after the cleanups have run (extract
    keeps its finished batches, a half-written run folder is removed)."""

    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
        try:
            return fn(*a, **kw)
        except USER_ERRORS as e:
            typer.echo(f"error: {error_line(e)}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as e:
            name = "SIGTERM" if isinstance(e, _Stopped) else "Ctrl-C"
            typer.echo(f"error: interrupted ({name}); finished work is kept, nothing half-written: "
                       "rerun the same command to continue", err=True)
            raise typer.Exit(143 if isinstance(e, _Stopped) else 130) from None
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return wrapper


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["mmgenre", *sys.argv[1:]])


def parse_kv(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """['k=v', ...] -> dict, values parsed as `sweep` parses them (JSON numbers, lists; true/True)."""
    from train_heads.sweep_parse import parse_value

    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValueError(f"{flag} expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = parse_value(v)
    return out


# ---- data set options, shared by extract and predict ------------------------------------
DataPath = Annotated[Path, typer.Option("--data", help="Data set root or file (MM-IMDb dir, jsonl dir, CSV/JSONL).")]
Format = Annotated[str, typer.Option(help="Reader: auto, mmimdb, jsonl, table.")]
Preset = Annotated[Optional[str], typer.Option(help="Named preset of reader flags, e.g. poster-subset.")]
Plot = Annotated[str, typer.Option(help="MM-IMDb plot choice: longest, first, all.")]
Labels = Annotated[str, typer.Option(help="Label set: auto (a table's own labels; mmimdb23 for MM-IMDb "
                                           "layouts and presets), mmimdb23 (GMU's 23 genres), data (every name).")]
DropLabel = Annotated[Optional[list[str]], typer.Option(
    "--drop-label", help="Remove this label everywhere (counted, printed); repeatable, e.g. '(no genres listed)'.")]
IdCol = Annotated[Optional[str], typer.Option(help="Table: id column.")]
TextCol = Annotated[Optional[list[str]], typer.Option(help="Table: text column(s); repeatable.")]
ImageCol = Annotated[Optional[str], typer.Option(help="Table: image path column.")]
ImageDir = Annotated[Optional[Path], typer.Option(help="Table: folder the images are in.")]
ImagePattern = Annotated[str, typer.Option(help="Table: image file name pattern, e.g. '{id}.jpg'.")]
LabelCol = Annotated[Optional[str], typer.Option(help="Table: one list-valued label column.")]
LabelCols = Annotated[Optional[list[str]], typer.Option(
    help="Table: one-hot 0/1 label columns (repeatable or a,b,c); auto: every 0/1 column not named like "
         "an id, title, year, text, path, split, date, rating or count (printed).")]
LabelSep = Annotated[str, typer.Option(help="Table: separator inside a joined label column.")]
SplitCol = Annotated[Optional[str], typer.Option(help="Table: split column (train/dev/test).")]
SplitFile = Annotated[Optional[Path], typer.Option(help="JSON {'train': [...], 'dev': [...], 'test': [...]} of ids.")]
IdNorm = Annotated[Optional[str], typer.Option(help="Normalise ids before matching the split file, e.g. strip-tt.")]
SplitSeed = Annotated[Optional[int], typer.Option(help="Seeded stratified random split when there is no split.")]
SplitRatios = Annotated[Optional[str], typer.Option(
    metavar="TRAIN,DEV,TEST", help="Fractions for --split-seed, e.g. 0.7,0.1,0.2 (default 0.6,0.1,0.3).")]
Limit = Annotated[Optional[int], typer.Option(help="Only the first N records (quick looks).")]


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0.7,0.1,0.2' -> (0.7, 0.1, 0.2); DatasetConfig checks there are three summing to 1."""
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--split-ratios {text!r}: give train,dev,test fractions, e.g. 0.7,0.1,0.2") from None


def dataset_config(data: Path, format: str, preset: str | None, plot: str, labels: str,
                   id_col: str | None, text_col: list[str] | None, image_col: str | None,
                   image_dir: Path | None, image_pattern: str, label_col: str | None,
                   label_cols: list[str] | None, label_sep: str, split_col: str | None,
                   split_file: Path | None, id_normalizer: str | None, split_seed: int | None,
                   limit: int | None, drop_label: list[str] | None = None,
                   split_ratios: str | None = None) -> Any:
    from extract.datasets import DatasetConfig

    extra: dict[str, Any] = {}
    if split_ratios is not None:  # DatasetConfig refuses ratios without --split-seed
        extra["split_ratios"] = parse_ratios(split_ratios)
    return DatasetConfig(path=data, format=format, preset=preset, plot=plot, labels=labels,
                         id_col=id_col, text_cols=list(text_col or []), image_col=image_col,
                         image_dir=image_dir, image_pattern=image_pattern, label_col=label_col,
                         label_cols=list(label_cols or []), label_sep=label_sep, split_col=split_col,
                         split_file=split_file, id_normalizer=id_normalizer, split_seed=split_seed,
                         limit=limit, drop_labels=list(drop_label or []), **extra)
