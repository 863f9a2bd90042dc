"""Measure the VIE data build: wall time of `seer data` and the satisfiability of every item; print one JSON dict.

    python benchmarks/vie_data.py --seed 0

Builds the default sets (300 train, 600 eval) through the real command into a temporary directory, timing it,
then checks every item of both files: its gold elaboration, rendered, passes the oracle judge (`verify`: the
instruction is satisfied and the prompt kept), and the image of its prompt alone fails (the cognitive gap is
there by construction). Both rates must be 1.0 and 0.0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seer.data.vie import load_vie
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.judge import verify
from seer.worlds.shapeworld.render import render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed passed to `seer data`")
    args = parser.parse_args()
    results: dict = {"seed": args.seed, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vie"
        command = [sys.executable, "-m", "seer.cli", "data", "--out", str(out), "--seed", str(args.seed)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        results["seer_data_wall_s"] = round(time.perf_counter() - start, 2)
        for name in ("train", "eval"):
            items = load_vie(out / f"{name}.jsonl")
            gold_pass = sum(verify(render(parse(it.gold)), it).passed for it in items)
            prompt_sat = sum(verify(render(parse(it.prompt)), it).satisfied for it in items)
            results[name] = {
                "items": len(items),
                "gold_passes": gold_pass / len(items),
                "prompt_satisfies": prompt_sat / len(items),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
