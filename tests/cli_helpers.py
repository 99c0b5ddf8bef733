"""Running the CLI in tests: a command that must succeed, or be refused with one line."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import tests.toy_encoder  # noqa: F401  (registers toy-image)
from cli import app

runner = CliRunner()
FAST = ["--max-epochs", "3", "--patience", "2", "--quiet"]  # train-head flags for quick runs


def run_ok(args: list) -> str:
    """Exit 0, no traceback; returns the output."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
    return r.output


def run_refused(args: list, *expect: str) -> str:
    """Exit 2, exactly one `error:` line holding every ``expect``, no traceback; returns it."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.output
    for e in expect:
        assert e in errors[0], errors[0]
    return errors[0]


def feature_args(caches: dict[str, Path], *mods: str) -> list[str]:
    """["-f", "image=<cache>", ...] for train-head from a {modality: cache} dict."""
    return [x for m in mods for x in ("-f", f"{m}={caches[m]}")]
