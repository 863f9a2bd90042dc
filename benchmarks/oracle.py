"""Measure the ShapeWorld oracle and the literal grammar on N seeded random scenes; print one JSON dict.

    python benchmarks/oracle.py --n 2000 --seed 0

Figures: exact-parse accuracy of the oracle on clean renders (32 and 64 px) and on the simulated tokenizer
degradation (`oracle.degrade`: Gaussian blur + per-pixel noise, at three strengths), the grammar's round-trip
rate `parse(describe(s)) == s`, the oracle's time per image, and the wall time. Scenes have 1-4 objects.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

from seer.worlds.shapeworld.grammar import describe, parse
from seer.worlds.shapeworld.oracle import degrade, parse_image
from seer.worlds.shapeworld.render import render_array
from seer.worlds.shapeworld.scene import random_scene

# (blur in px at 32 px, noise std): "standard" is what the tests bound; the others show where it breaks.
DEGRADATIONS = {"standard": (0.8, 8.0), "strong": (1.1, 12.0), "harsh": (1.5, 16.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of random scenes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the degradation noise")
    args = parser.parse_args()

    start = time.perf_counter()
    rng = random.Random(args.seed)
    scenes = [random_scene(rng, max_objects=4) for _ in range(args.n)]
    results: dict = {"n": args.n, "seed": args.seed, "objects_per_scene": "1-4"}
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"

    results["grammar_round_trip"] = sum(parse(describe(s)) == s for s in scenes) / args.n
    for size in (32, 64):
        images = [render_array(s, size) for s in scenes]
        t0 = time.perf_counter()
        results[f"oracle_clean_{size}px"] = sum(parse_image(im) == s for im, s in zip(images, scenes)) / args.n
        results[f"oracle_ms_per_image_{size}px"] = round(1000 * (time.perf_counter() - t0) / args.n, 3)
        for name, (blur, noise) in DEGRADATIONS.items():
            hits = sum(
                parse_image(degrade(im, seed=args.seed * 1_000_003 + i, blur=blur, noise=noise)) == s
                for i, (im, s) in enumerate(zip(images, scenes))
            )
            results[f"oracle_{name}_blur{blur}_noise{noise:g}_{size}px"] = hits / args.n
    results["wall_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
