"""The seed-0 run folder of one configuration of a sweep folder, for `evaluate` in make.sh:
    python docs/results/modalities/pick.py SWEEP FEATURE_SET HEAD [key=value ...]  (HEAD: the sweep's head label)
(key=value: HeadConfig settings the run must have, e.g. modality_dropout=0.3; a key not
given must be at its default, so the plain run and the dropout run are told apart)."""
import csv
import json
import sys
from pathlib import Path

sweep, feature_set, fusion, *pairs = sys.argv[1:]
want = {k: float(v) for k, v in (p.split("=", 1) for p in pairs)}
for row in csv.DictReader(open(Path(sweep) / "results.csv")):
    if (row["feature_set"], row["head"], row["seed"], row["status"]) != (feature_set, fusion, "0", "ok"):
        continue
    cfg = json.loads((Path(sweep) / "runs" / row["name"] / "config.json").read_text())["config"]
    if all(float(cfg.get(k, 0.0)) == v for k, v in want.items()) and \
            (want or float(cfg.get("modality_dropout", 0.0)) == 0.0):
        print(Path(sweep) / "runs" / row["name"])
        break
else:
    sys.exit(f"no finished seed-0 run of {feature_set} / {fusion} {pairs} in {sweep}")
