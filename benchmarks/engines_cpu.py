"""The static-cache engines against the reference loops on this CPU, on the embedded model's own workloads.

    python benchmarks/engines_cpu.py --repeats 3 --out engines_cpu.json

`JanusUMM.generate_text` and `generate_images` take ``engine="reference"`` (one forward per token over a growing
transformers cache) or ``engine="static"`` (`seer.models.janus_rollout`: a static KV cache, no CUDA graphs on a CPU).
Workloads, each a batch of ``--batch`` in float32 with ``--threads`` threads:

- ``judge``: SEER's instruction question about two of the model's images, answered greedily (the evaluator suite and
  RLMT's judge), budget 160 tokens;
- ``sampled``: the same answered at temperature 1 with per-sample seeds (RLVR's held-out accuracy draws, pairs);
- ``images``: random literal prompts drawn at the model's own guidance scale with per-sample seeds.

Each engine runs ``--repeats`` times, alternating, after one untimed call each; the figure is the median. Outputs
must be the same (texts, or image bytes) for the comparison to count: ``identical`` says how many were.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from seer.embedded import load_embedded_model
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.scene import random_scene

QUESTION = ("does the first image match the instruction better than the second image ? instruction : make it look icy "
            ". prompt : {prompt}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    umm = load_embedded_model("cpu")
    rng = random.Random(0)
    prompts = [describe(random_scene(rng, max_objects=3)) for _ in range(args.batch)]
    seeds = list(range(args.batch))
    drawn = umm.generate_images(prompts, seeds=seeds, engine="reference").images
    pairs = [[drawn[i], drawn[(i + 1) % len(drawn)]] for i in range(len(drawn))]
    questions = [QUESTION.format(prompt=p) for p in prompts]
    workloads = {
        "judge": lambda engine: umm.generate_text(questions, pairs, max_new_tokens=160, do_sample=False,
                                                  engine=engine).texts,
        "sampled": lambda engine: umm.generate_text(questions, pairs, max_new_tokens=160, seeds=seeds,
                                                    engine=engine).texts,
        "images": lambda engine: [img.tobytes() for img in umm.generate_images(prompts, seeds=seeds,
                                                                                engine=engine).images],
    }  # fmt: skip
    rows = {}
    for name, run in workloads.items():
        outputs = {engine: run(engine) for engine in ("reference", "static")}  # untimed: first calls
        times: dict[str, list[float]] = {"reference": [], "static": []}
        for _ in range(args.repeats):
            for engine, taken in times.items():
                start = time.perf_counter()
                run(engine)
                taken.append(time.perf_counter() - start)
        reference, static = statistics.median(times["reference"]), statistics.median(times["static"])
        same = sum(a == b for a, b in zip(outputs["reference"], outputs["static"]))
        rows[name] = {"reference_s": round(reference, 3), "static_s": round(static, 3),
                      "speedup": round(reference / static, 3), "identical": f"{same}/{args.batch}"}  # fmt: skip
        print(name, rows[name])
    figures = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "batch": args.batch, "repeats": args.repeats, "workloads": rows,
    }  # fmt: skip
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
