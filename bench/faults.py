"""Fault harness: random SIGKILLs of `extract` (image, text) and `sweep --jobs 2` on the real
subset; after each sequence of kills the result must equal an uninterrupted run, bit for bit.

    python bench/faults.py [--data DIR] [--kills 5] [--limit 512] [--seed 0]
                           [--targets image,text,sweep] [--signals KILL] [--workdir DIR] [--keep]

For each target the command first runs uninterrupted (the reference, and its wall time T).
Then a sequence: start the same command in a fresh output folder, kill it after a random
time in (0, T), restart it at once (as a user would), ... until it completes by itself;
then a new sequence, until --kills kills were delivered. After each kill, every process of
the killed command's process group (DataLoader workers, sweep workers, multiprocessing's
resource tracker) must be gone within 10 s. After each sequence:
  * extract: the cache has the same file name and the same bytes in every dataset (h5py)
    and the same `checksum` attr as the reference; the output folder holds exactly what
    the reference's does (no `*.tmp-*`, no `.partial/` folder, no lock file left over);
  * sweep: the same files as the reference (no `.tmp` run folder, no `failed/` record of
    a killed run) and every run's metrics.json byte-identical.
A kill is survived when its sequence ended identical and clean and left no process behind.
Commands run as `sys.executable cli.py ...` in their own session (start_new_session), so a
process group is exactly one command's processes; groups are killed only to clean up after
the orphan check. Prints one line per target, e.g.
    extract image: 5/5 kills survived (bit-identical; 2 sequences; orphans cleared in <=0.1s)
Exit code 1 if any kill was not survived. Not part of the test run.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from _common import REPO, subset_dir

from extract.procs import process_group

ORPHAN_WAIT = 10.0  # seconds a killed command's processes get to go away
SWEEP_FUSIONS = ("late", "concat", "gmu")  # x 2 seeds: 6 runs, more than the 2 workers


@dataclass
class Target:
    name: str  # "extract image", ...
    args: list[str]  # cli.py arguments, without the output folder
    out_flag: str  # "--out"
    check: Callable[[Path, Path], list[str]]  # (reference folder, folder) -> problems


@dataclass
class Tally:
    kills: int = 0
    survived: int = 0
    sequences: int = 0  # sequences with at least one kill
    slowest_clear: float = 0.0
    problems: list[str] = field(default_factory=list)


# ---- processes ------------------------------------------------------------------------------
def live_group(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of process group pgid: pid -> command line."""
    return {pid: cmd.strip()[:120] for pid, (_ppid, cmd) in process_group(pgid).items()}


def wait_group_gone(pgid: int, timeout: float = ORPHAN_WAIT) -> tuple[float, dict[int, str]]:
    """(seconds until group pgid had no live process, what was left after timeout); cleans up."""
    t0 = time.perf_counter()
    while (left := live_group(pgid)) and time.perf_counter() - t0 < timeout:
        time.sleep(0.05)
    if left:
        try:
            os.killpg(pgid, signal.SIGKILL)  # clean up after recording the orphans
        except ProcessLookupError:
            pass
    return time.perf_counter() - t0, left


def start(args: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:  # files, not pipes: an orphan holding a pipe would block us
        return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args], cwd=REPO, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


# ---- checks ---------------------------------------------------------------------------------
def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.is_dir() else set()


def strays(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if ".tmp-" in p.name or p.name.endswith(".partial") or p.name.startswith(".tmp"))


def check_cache(ref: Path, got: Path) -> list[str]:
    """Same files as the reference folder, and the cache's datasets and checksum bit-identical."""
    import h5py
    import numpy as np

    problems = [f"stray: {s}" for s in strays(got)]
    if tree(ref) != tree(got):
        problems.append(f"files differ from the uninterrupted run: extra {sorted(tree(got) - tree(ref))}, "
                        f"missing {sorted(tree(ref) - tree(got))}")
    for rf in ref.glob("*.h5"):
        gf = got / rf.name
        if not gf.is_file():
            continue  # reported above
        with h5py.File(rf, "r") as a, h5py.File(gf, "r") as b:
            if sorted(a) != sorted(b):
                problems.append(f"{rf.name}: datasets {sorted(b)} != {sorted(a)}")
                continue
            for k in a:
                x, y = a[k][()], b[k][()]
                same = x.dtype == y.dtype and x.shape == y.shape and (
                    x.tolist() == y.tolist() if x.dtype.kind == "O" else x.tobytes() == y.tobytes())
                if not same:
                    problems.append(f"{rf.name}: dataset {k} differs")
            if a.attrs.get("checksum") != b.attrs.get("checksum"):
                problems.append(f"{rf.name}: checksum attr {b.attrs.get('checksum')} != {a.attrs.get('checksum')}")
            if not bool(np.all(b.attrs.get("complete", True))):
                problems.append(f"{rf.name}: not marked complete")
    return problems


def check_sweep(ref: Path, got: Path) -> list[str]:
    """Same files as the reference sweep, every run's metrics.json byte-identical."""
    problems = [f"stray: {s}" for s in strays(got)]
    if tree(ref) != tree(got):
        problems.append(f"files differ from the uninterrupted sweep: extra {sorted(tree(got) - tree(ref))[:5]}, "
                        f"missing {sorted(tree(ref) - tree(got))[:5]}")
    for m in sorted((ref / "runs").glob("*/metrics.json")):
        g = got / m.relative_to(ref)
        if g.is_file() and g.read_bytes() != m.read_bytes():
            problems.append(f"{m.parent.name}: metrics.json differs")
    return problems


# ---- one target -----------------------------------------------------------------------------
def reference(t: Target, work: Path) -> float:
    out = work / "ref" / t.name.replace(" ", "-")
    shutil.rmtree(out, ignore_errors=True)
    log = work / "logs" / f"{t.name.replace(' ', '-')}-ref.log"
    t0 = time.perf_counter()
    proc = start([*t.args, t.out_flag, str(out)], log)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    wait_group_gone(proc.pid)
    if rc != 0:
        raise SystemExit(f"{t.name}: the uninterrupted run failed (exit {rc}): {last_line(log)}; see {log}")
    return wall


class Orphans:
    """Killed process groups being watched: each must be empty within ORPHAN_WAIT of its kill,
    while the restarted command already runs (a user restarts at once)."""

    def __init__(self) -> None:
        self.pending: dict[int, float] = {}  # pgid -> time of the kill
        self.slowest = 0.0
        self.left: list[str] = []

    def add(self, pgid: int) -> None:
        self.pending[pgid] = time.perf_counter()

    def poll(self, block: bool = False) -> None:
        while self.pending:
            for pgid, t_kill in list(self.pending.items()):
                age = time.perf_counter() - t_kill
                if not (left := live_group(pgid)):
                    self.slowest = max(self.slowest, age)
                    del self.pending[pgid]
                elif age > ORPHAN_WAIT:
                    self.left.append(f"{len(left)} processes alive {ORPHAN_WAIT:.0f}s after the kill: "
                                     f"{sorted(left.values())[:3]}")
                    self.slowest = max(self.slowest, age)
                    wait_group_gone(pgid, 0)  # clean up
                    del self.pending[pgid]
            if not block:
                return
            time.sleep(0.05)


def attack(t: Target, work: Path, kills: int, wall: float, rng: random.Random, signals: list[str]) -> Tally:
    """Kill sequences until `kills` kills were delivered; each sequence is checked at its end."""
    slug = t.name.replace(" ", "-")
    ref, out = work / "ref" / slug, work / "killed" / slug
    tally = Tally()
    n = 0
    while tally.kills < kills:
        n += 1
        shutil.rmtree(out, ignore_errors=True)
        log = work / "logs" / f"{slug}-seq{n}.log"
        seq_kills, seq_problems, orphans = 0, [], Orphans()
        while True:
            proc = start([*t.args, t.out_flag, str(out)], log)
            deadline = time.perf_counter() + rng.uniform(0.0, wall) if tally.kills < kills else float("inf")
            while proc.poll() is None and time.perf_counter() < deadline:
                orphans.poll()
                time.sleep(0.02)
            if proc.poll() is None:  # kill it, restart at once, watch its group meanwhile
                proc.send_signal(getattr(signal, f"SIG{rng.choice(signals)}"))
                proc.wait()
                orphans.add(proc.pid)
                seq_kills += 1
                tally.kills += 1
                continue
            if proc.returncode != 0:  # a restart that was refused or failed (not our kill)
                seq_problems.append(f"run exited {proc.returncode}: {last_line(log)}")
                if len(seq_problems) > 20:
                    break
                time.sleep(1.0)
                continue
            break  # completed by itself: the sequence is over
        orphans.add(proc.pid)  # the completed run's processes must be gone too
        orphans.poll(block=True)
        tally.slowest_clear = max(tally.slowest_clear, orphans.slowest)
        seq_problems += orphans.left + t.check(ref, out)
        tally.sequences += seq_kills > 0  # a sequence the random time never interrupted is still checked
        if seq_problems:
            tally.problems.append(f"sequence {n} ({seq_kills} kills): " + "; ".join(seq_problems[:6]))
        else:
            tally.survived += seq_kills
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="the real poster subset (default: $MMGENRE_SUBSET or ../shared/data/...)")
    ap.add_argument("--kills", type=int, default=5, help="kills per target")
    ap.add_argument("--limit", type=int, default=512, help="rows of the subset (posters and plots)")
    ap.add_argument("--batch-size", type=int, default=32, help="extract --batch-size (batches are the resume unit)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--targets", default="image,text,sweep", help="comma list of image, text, sweep")
    ap.add_argument("--signals", default="KILL", help="signals to pick from per kill, e.g. KILL or KILL,TERM,INT")
    ap.add_argument("--workdir", type=Path, help="where caches, sweeps and logs go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if not Path("/proc/self/stat").is_file():
        raise SystemExit("bench/faults.py reads process groups from /proc: Linux only")
    root = subset_dir(a.data)
    targets = [x.strip() for x in a.targets.split(",") if x.strip()]
    if bad := set(targets) - {"image", "text", "sweep"}:
        raise SystemExit(f"--targets: unknown {sorted(bad)}; choose from image, text, sweep")
    signals = [s.strip().upper().removeprefix("SIG") for s in a.signals.split(",")]
    if bad := [s for s in signals if s not in ("KILL", "TERM", "INT")]:
        raise SystemExit(f"--signals: unknown {bad}; choose from KILL, TERM, INT")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="mmgenre-faults-"))
    rng = random.Random(a.seed)
    print(f"subset {root}, --limit {a.limit}, {a.kills} kills per target ({'/'.join(signals)}), seed {a.seed}, "
          f"work {work}")

    data = ["--data", str(root), "--preset", "poster-subset", "--limit", str(a.limit),
            "--batch-size", str(a.batch_size)]
    extract = {"image": Target("extract image", ["extract", *data, "--encoder", "efficientnet-lite0"], "--out",
                               check_cache),
               "text": Target("extract text", ["extract", *data, "--encoder", "minilm"], "--out", check_cache)}
    walls: dict[str, float] = {}
    for k, t in extract.items():  # references first: the sweep trains on them
        if k in targets or "sweep" in targets:
            walls[k] = reference(t, work)
            print(f"{t.name}: uninterrupted run {walls[k]:.1f}s")
    failed = False
    for k in ("image", "text"):
        if k in targets:
            failed |= report(extract[k], attack(extract[k], work, a.kills, walls[k], rng, signals))
    if "sweep" in targets:
        caches = {m: next((work / "ref" / f"extract-{m}").glob("*.h5")) for m in ("image", "text")}
        t = Target("sweep --jobs 2", ["sweep", "-f", f"image={caches['image']}", "-f", f"text={caches['text']}",
                                      *[x for f in SWEEP_FUSIONS for x in ("--fusion", f)], "--seeds", "0,1",
                                      "--jobs", "2", "--quiet"], "--out", check_sweep)
        walls["sweep"] = reference(t, work)
        print(f"{t.name}: uninterrupted run {walls['sweep']:.1f}s ({len(SWEEP_FUSIONS) * 2} runs)")
        failed |= report(t, attack(t, work, a.kills, walls["sweep"], rng, signals))
    if not a.keep and a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


def report(t: Target, tally: Tally) -> bool:
    ok = not tally.problems
    print(f"{t.name}: {tally.survived}/{tally.kills} kills survived "
          f"({'bit-identical' if ok else 'FAILED'}; {tally.sequences} sequences; "
          f"orphans cleared in <={tally.slowest_clear:.1f}s)")
    for p in tally.problems:
        print(f"  {p}")
    return not ok


if __name__ == "__main__":
    main()
