"""`--help` is readable on a narrow terminal: every option name appears whole (issue 9, item 20)."""
from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli import app


def _commands(cmd, path: tuple[str, ...] = ()) -> list:  # noqa: ANN001 (click or typer's vendored click)
    out = [(path, cmd)]
    for name, sub in getattr(cmd, "commands", {}).items():
        out += _commands(sub, (*path, name))
    return out


ALL = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "mmgenre" for p, _ in ALL])
def test_help_never_cuts_an_option_name(path: tuple[str, ...], cmd) -> None:  # noqa: ANN001
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "70", "TERMINAL_WIDTH": "70"})
    assert res.exit_code == 0, res.output
    assert "…" not in res.output
    for p in cmd.params:
        for opt in [*p.opts, *p.secondary_opts]:
            if opt.startswith("-"):
                assert opt in res.output, f"{' '.join(path)} --help cuts {opt}"
