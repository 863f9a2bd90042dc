"""Where the evaluator's answers to instruction pairs go wrong: the first step of its checklist that differs from the
oracle's.

    python benchmarks/judge_errors.py runs/NAME [--zero_shot] [--pairs train --recall_samples 16] [--out FILE]

The evaluator answers an instruction question with the checklist pre-training taught it, whose verdict is the AND of
its marks; the same checklist written from the oracle's reading of the first image and the item's spec is the
oracle's verdict (`seer.worlds.shapeworld.checklist`; its agreement with the pair labels is reported). For the
stage-2 pairs of a `seer run` folder's evaluation pairs (`eval-evaluator/pairs`), in both orders, answered greedily as
`seer eval --suite evaluator` answers them (with the run's evaluator adapter, or none with --zero_shot), each answer
gets the first step where it differs from the oracle's checklist (parts compared as sets, so their order does not
count):

    caption     the description is not the oracle's reading of the first image
    recall      a concept the item asks for is not recalled (its definition is not one of the think's sentences)
    concept     every asked concept recalled, but the concept checks name other parts or give other marks
    keep list   the keep check names other parts than the spec's keep records (counted apart too: no keep check)
    keep marks  the same parts, other marks
    right       the whole checklist is the oracle's
    unreadable  the oracle cannot read the first image

Reported per split: answers and wrong answers at each step, and for the answers that miss a recall, which
concepts their thinks recalled instead, per instruction (`--misses N` prints the N most frequent). `--pairs train`
asks RLVR's own training pairs instead (`rlvr/pairs/train-*`), and `--recall_samples N` then samples N answers (at
`--temperature`, default RLVR's 1.0) to each greedy answer that misses a recall: how many samples recall every asked
concept, and how many answers' samples all give one verdict (groups GRPO learns nothing from): what RLVR could
reinforce.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import random
from pathlib import Path

import torch

from seer.data.pairs import PairSet, QuestionTemplates, load_pairs, oracle_view
from seer.data.vie import VIEItem, load_vie
from seer.eval.command import load_model
from seer.eval.evaluator import Judgement, judge_pairs
from seer.eval.evaluator_suite import load_rlvr_run
from seer.formats import join_response
from seer.models.adapters import EVALUATOR
from seer.models.base import UnifiedModel
from seer.rl.rewards import extract_verdict
from seer.worlds.shapeworld.checklist import STEPS, Checklist, first_error, recalled_names, writes_keep_check
from seer.worlds.shapeworld.oracle import parse_image


def miss_table(misses: collections.Counter, wrong: collections.Counter) -> list[dict]:
    """The recall misses per (split, instruction, asked concepts, recalled concepts), most frequent first."""
    rows = []
    for key, n in misses.most_common():
        split, text, asked, got = key
        rows.append(
            dict(split=split, instruction=text, asked=list(asked), recalled=list(got), answers=n, wrong=wrong[key])
        )
    return rows


def pair_source(run: Path, which: str) -> tuple[PairSet, dict[str, VIEItem]]:
    """The stage-2 pairs `which` ("eval": `seer eval`'s, "train": RLVR's own) of a run folder, and their items."""
    folder, prefix, items_file = {
        "eval": (run / "eval-evaluator" / "pairs", "", "eval.jsonl"),
        "train": (run / "rlvr" / "pairs", "train-", "train.jsonl"),
    }[which]
    found = sorted(d for d in folder.iterdir() if d.name.startswith(prefix)) if folder.is_dir() else []
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one {which} pair set, found {len(found)}")
    return load_pairs(found[0]), {item.id: item for item in load_vie(run / "data" / items_file)}


def sampled_recalls(
    model: UnifiedModel,
    pair_set: PairSet,
    missed: list[tuple[Judgement, Checklist]],
    templates: QuestionTemplates,
    n: int,
    temperature: float,
    max_new_tokens: int,
) -> dict[str, float]:
    """For greedy answers that miss a recall (`missed`, each with the oracle's checklist), `n` sampled answers each at
    `temperature`: how many get past the recall step, and for how many answers the samples' verdicts all agree (a
    group GRPO learns nothing from)."""
    past, answers_with, agreeing = 0, 0, 0
    for k, (judgement, expected) in enumerate(missed):
        texts = model.generate_text(
            [templates.text(judgement.pair)] * n, images=[pair_set.images(judgement.pair, judgement.swapped)] * n,
            max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
            seeds=list(range(k * n, (k + 1) * n)), response_prefix=templates.response_prefix,
        ).texts  # fmt: skip
        texts = [join_response(templates.response_prefix, text) for text in texts]
        recalled = sum(first_error(text, expected) not in ("caption", "recall") for text in texts)
        past += recalled
        answers_with += recalled > 0
        agreeing += len({extract_verdict(text) for text in texts}) == 1
    return {
        "answers": len(missed),
        "samples_each": n,
        "temperature": temperature,
        "samples_past_recall": past,
        "answers_with_a_sample_past_recall": answers_with,
        "answers_whose_samples_all_give_one_verdict": agreeing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="A `seer run` folder (its rlvr/, data/ and eval-evaluator/pairs/).")
    parser.add_argument(
        "--pairs",
        choices=("eval", "train"),
        default="eval",
        help="The evaluation pairs (`seer eval`'s) or RLVR's own training pairs.",
    )
    parser.add_argument("--n_pairs", type=int, default=0, help="Answer this many pairs, drawn seeded (0: all).")
    parser.add_argument("--zero_shot", action="store_true", help="Answer with every adapter off.")
    parser.add_argument(
        "--no_whole_marks",
        action="store_true",
        help="Concepts checked as wholes carry no marks (corpora before run30; the shipped run33 has them).",
    )
    parser.add_argument(
        "--recall_samples",
        type=int,
        default=0,
        help="Also sample this many answers to each greedy answer that misses a recall.",
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="Sampling temperature (RLVR's).")
    parser.add_argument("--misses", type=int, default=0, help="Print the N most frequent recall misses.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()  # fmt: skip
    torch.set_num_threads(args.threads)

    run = Path(args.run)
    rlvr_args, adapter = load_rlvr_run(str(run / "rlvr"))
    model = load_model(rlvr_args.model, args.device)
    model.load_adapter(EVALUATOR, adapter)
    pair_set, items = pair_source(run, args.pairs)
    pairs = pair_set.stage(2)
    if args.n_pairs:
        pairs = random.Random(0).sample(pairs, min(args.n_pairs, len(pairs)))
    templates = rlvr_args.templates()

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    oracle_right: list[bool] = []
    missed = []
    misses: collections.Counter = collections.Counter()
    misses_wrong: collections.Counter = collections.Counter()
    with model.no_adapter() if args.zero_shot else model.use_adapter(EVALUATOR):
        for swapped in (False, True):
            judgements = judge_pairs(
                model, pair_set, pairs, templates, swapped=swapped, batch_size=args.batch_size,
                max_new_tokens=rlvr_args.max_completion_length,
            )  # fmt: skip
            for judgement in judgements:
                pair = judgement.pair
                scene = parse_image(oracle_view(pair_set.images(pair, swapped=swapped)[0]))
                expected = None if scene is None else Checklist.of(scene, items[pair.item_id], not args.no_whole_marks)
                if expected is not None:
                    oracle_right.append(expected.verdict == judgement.expected)
                step = first_error(judgement.completion, expected)
                if step == "recall":
                    missed.append((judgement, expected))
                    item = items[pair.item_id]
                    key = (pair.split, item.instruction, tuple(item.concepts), recalled_names(judgement.completion))
                    misses[key] += 1
                    misses_wrong[key] += not judgement.correct
                no_keep = step == "keep list" and not writes_keep_check(judgement.completion)
                for split in (pair.split, "all"):
                    counts[split][step] += 1
                    counts[split][f"{step} (wrong)"] += not judgement.correct
                    counts[split]["no keep check"] += no_keep
                    counts[split]["no keep check (wrong)"] += no_keep and not judgement.correct
                    counts[split]["answers"] += 1
                    counts[split]["wrong"] += not judgement.correct
        if args.recall_samples:
            samples = sampled_recalls(
                model, pair_set, missed, templates, args.recall_samples, args.temperature,
                rlvr_args.max_completion_length,
            )  # fmt: skip

    report = {
        "date": datetime.date.today().isoformat(),
        "run": str(run),
        "pairs": args.pairs,
        "mode": "zero_shot" if args.zero_shot else "trained",
        "oracle_checklist_agrees_with_labels": round(sum(oracle_right) / max(1, len(oracle_right)), 4),
        "counts": {split: dict(sorted(c.items())) for split, c in sorted(counts.items())},
        "recall_misses": miss_table(misses, misses_wrong),
        **({"recall_samples": samples} if args.recall_samples else {}),
    }
    print(
        f"{run} ({args.pairs} pairs, {report['mode']}); the oracle's checklist agrees with the pair labels on "
        f"{report['oracle_checklist_agrees_with_labels']:.3f} of the readable answers"
    )
    splits = [s for s in ("id", "ood") if s in counts] + ["all"]
    print("| first step that differs | " + " | ".join(f"{s}: answers (wrong)" for s in splits) + " |")
    print("|---" * (len(splits) + 1) + "|")
    for step in STEPS:
        cells = [f"{counts[s][step]} ({counts[s][step + ' (wrong)']})" for s in splits]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print("| **all** | " + " | ".join(f"{counts[s]['answers']} ({counts[s]['wrong']})" for s in splits) + " |")
    cells = ", ".join(f"{s} {counts[s]['no keep check']} ({counts[s]['no keep check (wrong)']})" for s in splits)
    print(f"keep-list answers that write no keep check: {cells}")
    if args.misses:
        print("| recall misses: answers (wrong) | split | instruction | asked | recalled |\n|---|---|---|---|---|")
        for row in report["recall_misses"][: args.misses]:
            asked, got = ", ".join(row["asked"]), ", ".join(row["recalled"]) or "none"
            print(f"| {row['answers']} ({row['wrong']}) | {row['split']} | {row['instruction']} | {asked} | {got} |")
    if args.recall_samples:
        print("samples for the greedy answers that miss a recall: " + json.dumps(samples))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
