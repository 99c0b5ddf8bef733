"""Read a user's text file (table, JSON lines, MM-IMDb JSON, split file) as UTF-8.

One decoder for every reader, so every one of them accepts a UTF-8 byte-order mark (Excel
and Notepad write one) and refuses other encodings the same way: one line naming the file,
the line and the byte, instead of a bare ``UnicodeDecodeError`` that names neither.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_utf8(path: Path, flag: str) -> str:
    """The text of ``path`` decoded as UTF-8 (BOM dropped); ValueError naming file:line if it is not."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                         f"save the file as UTF-8 and retry ({flag})") from None


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of a JSON-lines text; split on \\n only, because JSON strings
    may hold U+2028 and other characters that str.splitlines() would also split on."""
    return list(enumerate(text.split("\n"), 1))


def json_line(line: str, where: str) -> Any:
    """One JSON-lines row; a bad line or a key given twice in one object (json keeps the last
    one silently) is one ValueError naming `where` (file:line)."""
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"{where}: key(s) {twice} appear twice in one JSON object; keep one")
        return dict(pairs)

    try:
        return json.loads(line, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: bad JSON line: {e}") from None
