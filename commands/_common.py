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
    from train_heads.sweep.parse import parse_value

    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValueError(f"{flag} expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k] = parse_value(v)
    return out


# ---- data set options, shared by extract and predict ------------------------------------
DataPath = Annotated[Optional[Path], typer.Option(
    "--data", help="Data set root or file (MM-IMDb dir, jsonl dir, CSV/JSONL); or `data` in --dataset.")]
DatasetFile = Annotated[Optional[Path], typer.Option(
    "--dataset", help="TOML file describing the data set once, keys as these flags (data, format, image_dir, "
                      "text_col, split_ratios, ...); relative paths in it are relative to the file; a flag "
                      "given explicitly overrides the file's key (printed).")]
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
MetaFile = Annotated[Optional[Path], typer.Option(
    help="Metadata table (CSV/TSV/JSONL) joined by id: director, cast, keywords... as metadata fields "
         "(lists as JSON or a|b), its --meta-text-cols as text fields. --preset poster-subset picks up "
         "metadata/metadata.csv when present.")]
MetaCols = Annotated[Optional[str], typer.Option(
    help="Columns of --meta-file kept as metadata fields, e.g. director,cast,writer (default: all but the "
         "id, *_src and the text columns).")]
MetaTextCols = Annotated[str, typer.Option(
    help="Columns of --meta-file joined as text fields (meta_<col> if the data set has that field already).")]
TextFile = Annotated[Optional[list[Path]], typer.Option(
    "--text-file", help="Table of extra text fields joined by id (e.g. the poster text `ocr` wrote); "
                        "repeatable; columns ocr_* are not joined.")]


def parse_ratios(text: str) -> tuple[float, ...]:
    """'0.7,0.1,0.2' -> (0.7, 0.1, 0.2); DatasetConfig checks there are three summing to 1."""
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--split-ratios {text!r}: give train,dev,test fractions, e.g. 0.7,0.1,0.2") from None


def explicit_flags(ctx: typer.Context) -> set[str]:
    """Names of the command's parameters given on the command line (not left at their default);
    the command takes `ctx: typer.Context` to know (a flag repeating its default still counts)."""
    # by name: typer may bring its own copy of click's ParameterSource enum
    return {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"}


def merge_dataset_file(flags: dict[str, Any], dataset_file: Path | None, explicit: set[str]) -> dict[str, Any]:
    """The data-set flags with a --dataset TOML file's keys filled in; a flag given explicitly on
    the command line wins over the file's key, and each such override is printed."""
    if dataset_file is None:
        return flags
    from extract.dataset_file import read_dataset_file

    merged = dict(flags)
    for key, value in read_dataset_file(dataset_file, tuple(flags)).items():
        if key in explicit:
            typer.echo(f"--dataset {dataset_file}: --{key.replace('_', '-')} given on the command line "
                       f"overrides {key} = {value if not isinstance(value, Path) else str(value)!r}")
        else:
            merged[key] = value
    return merged


def dataset_config(data: Path | None, format: str, preset: str | None, plot: str, labels: str,
                   id_col: str | None, text_col: list[str] | None, image_col: str | None,
                   image_dir: Path | None, image_pattern: str, label_col: str | None,
                   label_cols: list[str] | None, label_sep: str, split_col: str | None,
                   split_file: Path | None, id_normalizer: str | None, split_seed: int | None,
                   limit: int | None, drop_label: list[str] | None = None,
                   split_ratios: str | tuple[float, ...] | None = None, dataset_file: Path | None = None,
                   meta_file: Path | None = None, meta_cols: str | None = None, meta_text_cols: str = "plot",
                   text_file: list[Path] | None = None,
                   explicit: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    """A DatasetConfig from the data-set flags, merged over a --dataset TOML file when given
    (`explicit`: the flags given on the command line, `explicit_flags(ctx)`, which win)."""
    from extract.datasets import DatasetConfig

    f = merge_dataset_file(dict(
        data=data, format=format, preset=preset, plot=plot, labels=labels, drop_label=drop_label, id_col=id_col,
        text_col=text_col, image_col=image_col, image_dir=image_dir, image_pattern=image_pattern,
        label_col=label_col, label_cols=label_cols, label_sep=label_sep, split_col=split_col,
        split_file=split_file, id_normalizer=id_normalizer, split_seed=split_seed, split_ratios=split_ratios,
        limit=limit, meta_file=meta_file, meta_cols=meta_cols, meta_text_cols=meta_text_cols,
        text_file=text_file), dataset_file, explicit)
    if f["data"] is None:
        raise ValueError("give the data set: --data PATH, or --dataset FILE.toml with data = \"...\"")
    extra: dict[str, Any] = {}
    if f["split_ratios"] is not None:  # DatasetConfig refuses ratios without --split-seed
        r = f["split_ratios"]
        extra["split_ratios"] = parse_ratios(r) if isinstance(r, str) else r
    return DatasetConfig(path=f["data"], format=f["format"], preset=f["preset"], plot=f["plot"], labels=f["labels"],
                         id_col=f["id_col"], text_cols=list(f["text_col"] or []), image_col=f["image_col"],
                         image_dir=f["image_dir"], image_pattern=f["image_pattern"], label_col=f["label_col"],
                         label_cols=list(f["label_cols"] or []), label_sep=f["label_sep"], split_col=f["split_col"],
                         split_file=f["split_file"], id_normalizer=f["id_normalizer"], split_seed=f["split_seed"],
                         limit=f["limit"], drop_labels=list(f["drop_label"] or []), meta_file=f["meta_file"],
                         meta_fields=f["meta_cols"], meta_text_cols=f["meta_text_cols"],
                         text_files=list(f["text_file"] or []), **extra)


# The reader flags every data-set command takes (extract, finetune), by parameter name.
READER_FLAGS = ("data", "format", "preset", "plot", "labels", "id_col", "text_col", "image_col", "image_dir",
                "image_pattern", "label_col", "label_cols", "label_sep", "split_col", "split_file", "id_normalizer",
                "split_seed", "limit", "drop_label", "split_ratios", "dataset_file", "meta_file", "meta_cols",
                "meta_text_cols", "text_file")


def dataset_config_from(flags: dict[str, Any], explicit: set[str]) -> Any:
    """dataset_config() from a command's parameters (its locals()), READER_FLAGS picked by name."""
    return dataset_config(**{k: flags[k] for k in READER_FLAGS}, explicit=explicit)
