"""Probe: can the evaluator adapter hold the oracle's checklists at all? Supervised fine-tuning on RLVR's own pairs.

    python benchmarks/judge_sft.py runs/NAME OUT [--epochs 3 --learning_rate 5e-4 --batch_size 16 --seed 0]

RLVR rewards a verdict; it can only reinforce checklists its samples contain, and at every budget tried they miss the
same recalls and keep lists (benchmarks/RESULTS.md). This probe asks what an adapter of the same rank learns when it is
shown the right answer instead: a fresh `evaluator` adapter is trained by cross-entropy on the oracle's checklist
(`seer.worlds.shapeworld.checklist`) for the first image of every stage-2 pair of the run's RLVR training pairs
(`rlvr/pairs/train-*`, both orders), answers whose verdict is not the pair's label left out. Stage-1 pairs (prompt
questions) have no checklist writer and are left to the base model. The adapter and a copy of the run's RLVR config
go to OUT/rlvr; OUT/data and OUT/eval-evaluator are links to the run's, so that

    python benchmarks/judge_errors.py OUT
    seer eval --suite evaluator --rlvr_dir OUT/rlvr --output_dir OUT/eval-evaluator-sft --vie_file OUT/data/eval.jsonl

measure it on the evaluation pairs exactly as the RLVR evaluator was measured. A probe, not a stage of `seer run`:
the paper's stage 1 is GRPO, and a checklist exists only where an oracle writes one.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import torch

from seer.data.pairs import Pair, PairSet, oracle_view
from seer.data.vie import VIEItem
from seer.eval.command import load_model
from seer.eval.evaluator import Judgement
from seer.eval.evaluator_suite import load_rlvr_run
from seer.models.adapters import EVALUATOR, LoraSettings, adapter_parameters
from seer.worlds.shapeworld.checklist import Checklist
from seer.worlds.shapeworld.oracle import parse_image

from judge_errors import pair_source


def examples(pair_set: PairSet, items: dict[str, VIEItem]) -> tuple[list[tuple[Pair, bool, str]], dict[str, int]]:
    """(pair, swapped, answer) for every stage-2 pair in both orders whose first image the oracle reads and whose
    checklist verdict is the label (the answer is the oracle's whole checklist answer), and what was left out."""
    kept, counts = [], {"answers": 0, "unreadable": 0, "verdict_not_label": 0}
    for pair in pair_set.stage(2):
        for swapped in (False, True):
            counts["answers"] += 1
            scene = parse_image(oracle_view(pair_set.images(pair, swapped)[0]))
            if scene is None:
                counts["unreadable"] += 1
                continue
            checklist = Checklist.of(scene, items[pair.item_id], wholes=True)
            if checklist.verdict != Judgement(pair, swapped, completion="").expected:
                counts["verdict_not_label"] += 1
                continue
            kept.append((pair, swapped, checklist.answer()))
    return kept, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="A `seer run` folder (its rlvr/ with pairs, data/, eval-evaluator/pairs/).")
    parser.add_argument("out", help="Where the probe's evaluator goes (OUT/rlvr/evaluator).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    run, out = Path(args.run), Path(args.out)
    rlvr_args, _ = load_rlvr_run(str(run / "rlvr"))
    model = load_model(rlvr_args.model, args.device)
    model.add_adapter(EVALUATOR, LoraSettings(r=rlvr_args.lora_r, alpha=rlvr_args.lora_alpha, dropout=0.0))
    model.activate_adapter(EVALUATOR, trainable=True)
    params = list(adapter_parameters(model.module, EVALUATOR).values())
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=0.0)

    pair_set, items = pair_source(run, "train")
    templates = rlvr_args.templates()
    data, counts = examples(pair_set, items)
    print(f"{len(data)} answers to learn ({json.dumps(counts)})")
    # Scored as `token_logprobs` scores any completion: the prompt without the response prefix, the answer with it,
    # the prefix's tokens left out of the loss (the same tokens as a prompt that writes it: `with_response_prefix`).
    tokenizer = model.tokenizer
    prefix = len(tokenizer(templates.response_prefix, add_special_tokens=False).input_ids)
    if any(not answer.startswith(templates.response_prefix) for _, _, answer in data):
        raise SystemExit(f"response_prefix {templates.response_prefix!r} does not start the checklist answers")

    rng = random.Random(args.seed)
    losses, start = [], time.time()
    model.module.train()
    for epoch in range(args.epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        for step in range(0, len(order), args.batch_size):
            chunk = [data[i] for i in order[step : step + args.batch_size]]
            ids = [tokenizer(a, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for _, _, a in chunk]
            scored = model.token_logprobs(
                [templates.text(pair) for pair, _, _ in chunk], ids,
                [pair_set.images(pair, swapped) for pair, swapped, _ in chunk],
            )  # fmt: skip
            loss = -(scored.logprobs[:, prefix:].sum() / scored.mask[:, prefix:].sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        steps = math.ceil(len(order) / args.batch_size)
        print(f"epoch {epoch + 1}: mean loss {sum(losses[-steps:]) / steps:.4f} ({time.time() - start:.0f} s)")
    model.module.eval()

    (out / "rlvr").mkdir(parents=True, exist_ok=True)
    model.save_adapter(EVALUATOR, out / "rlvr" / EVALUATOR)
    shutil.copy(run / "rlvr" / "config.yaml", out / "rlvr" / "config.yaml")
    for name in ("data", "eval-evaluator", "rlvr/pairs"):
        if not (out / name).exists():
            (out / name).symlink_to((run / name).resolve())
    report = {"args": vars(args), "counts": counts, "answers": len(data), "seconds": round(time.time() - start),
              "losses": [round(x, 4) for x in losses]}  # fmt: skip
    (out / "sft.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
