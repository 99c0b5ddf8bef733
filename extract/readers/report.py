"""The reader report (``Dataset.report``) as lines for the user.

Every choice a reader made on its own (ids from row numbers, the label set, columns taken
by ``--label-cols auto``, names renamed to a GMU genre or dropped, split-file ids that
matched nothing, records left without a split) becomes one line, so `extract` never decides anything silently. The split
sizes and the label set are always shown; the rest only when it happened.
"""
from __future__ import annotations

from typing import Any

_SHOW_NAMES = 30  # label names listed in full up to this many


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def report_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable lines for a reader report (see extract/readers/finish.py for its keys)."""
    lines = ["splits: " + " ".join(f"{k}={v}" for k, v in report.get("split_counts", {}).items())]
    label_set, names = report.get("label_set"), report.get("label_names", [])
    why = ""
    if report.get("label_set_auto"):
        why = (" (--labels auto: the table's own label names)" if label_set == "data"
               else " (--labels auto: GMU's 23 MM-IMDb genres; --labels data keeps every name)")
    shown = ", ".join(names[:_SHOW_NAMES]) + (", ..." if len(names) > _SHOW_NAMES else "")
    lines.append(f"labels: {label_set}{why}, {len(names)} names: {shown}")
    if "label_cols" in report:
        left = report.get("label_cols_left_out", {})
        lines.append(f"--label-cols auto took {len(report['label_cols'])} columns: {', '.join(report['label_cols'])}"
                     + "".join(f"; left out {reason}: {', '.join(cols)}" for reason, cols in left.items() if cols))
    if report.get("renamed_labels"):
        lines.append("labels renamed to a canonical name, records per name: "
                     + ", ".join(f"{k}->{v['to']}={v['records']}" for k, v in report["renamed_labels"].items()))
    if report.get("dropped_labels"):
        lines.append(f"labels dropped (not in --labels {label_set}), records per name: "
                     + _counts(report["dropped_labels"]))
    if report.get("removed_labels"):
        lines.append("labels removed by --drop-label, records per name: "
                     + ", ".join(f"{k}={v}" + (" (not in the data)" if v == 0 else "")
                                 for k, v in report["removed_labels"].items()))
    unknown = report.get("unknown_split_ids") or {}
    if sum(unknown.values()):
        lines.append(f"split-file ids matching no record: {sum(unknown.values())} ({_counts(unknown)})")
    if report.get("records_without_split"):
        lines.append(f"records without a split (kept as 'none', never trained or evaluated on): "
                     f"{report['records_without_split']}")
    if report.get("records_without_labels"):
        lines.append(f"records without any label (all-negative rows): {report['records_without_labels']}")
    meta = report.get("meta")
    if meta:
        lines.append(f"metadata from {meta['file']}: {meta['rows_matched']} of {meta['records']} records matched; "
                     "records with each field: " + _counts(meta["fields"])
                     + (f"; text fields {_counts(meta['text_fields'])}" if meta["text_fields"] else ""))
    for t in report.get("text_files", []):
        lines.append(f"text fields from {t['file']}: {t['rows_matched']} records matched; empty (masked): "
                     + _counts(t["empty"]))
    lines += [f"note: {n}" for n in report.get("notes", [])]
    return lines
