"""How the base model's *sampled* answers to the instruction question use a recalled concept: what RLVR reinforces.

    python benchmarks/judge_recall.py --pairs runs/NAME/rlvr/pairs/train-<key> --items runs/NAME/data/train.jsonl \
        --model src/seer/assets/shapeworld-tiny

For stage-2 (instruction) pairs of a pair cache written by `seer rlvr` (images from that model's own generator),
``--samples`` answers per pair and order are drawn at temperature 1 with every adapter off, under the RLVR recipe's
instruction question. Each answer is sorted by its think: it recalls a concept's definition about the first image,
about the second, checks the quoted prompt ("asked :"), or does none of these. For answers that recall, about the
first image, a concept the item asks for, the verdict is compared with that concept's truth on the first image as
the oracle reads it: a recall RLVR can reinforce is one whose verdict follows the concept. Reported: accuracy
against the pair label per kind of answer and failure kind, that agreement overall and by concept category, and how
often a recall about the first image names a concept the item asks for (finding the concept in the instruction's
words), by the category of the item.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import random
from pathlib import Path

import torch

from seer.data.pairs import load_pairs
from seer.data.vie import load_vie
from seer.eval.command import load_model
from seer.formats import join_response
from seer.rl.rewards import extract_verdict
from seer.train.rlvr import RLVRArgs
from seer.worlds.shapeworld.concepts import Concept, recalled_concept, scene_has_concept
from seer.worlds.shapeworld.oracle import parse_image

FLIPPED = {"Yes": "No", "No": "Yes"}


def kind_of(text: str, concept: Concept | None) -> str:
    """How the answer's think works, given the concept it recalls (`recalled_concept`)."""
    if concept is not None:
        return "recall, second image" if "the second image shows" in text else "recall, first image"
    return "prompt checklist" if "asked :" in text else "description only"


def rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", required=True, help="A pair-set folder of `seer rlvr` (…/pairs/train-<key>).")
    parser.add_argument("--items", required=True, help="The VIE file the pairs were built from (for their concepts).")
    parser.add_argument("--model", default=None, help="Model directory (default: the embedded model).")
    parser.add_argument("--question", default=RLVRArgs.instruction_question, help="The instruction question.")
    parser.add_argument("--response_prefix", default=RLVRArgs.response_prefix,
                        help="The answer's start, written for the model (RLVR's recipe key of that name).")
    parser.add_argument("--n_pairs", type=int, default=100, help="Stage-2 pairs drawn (seeded) from the set.")
    parser.add_argument("--samples", type=int, default=4, help="Sampled answers per pair and order.")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (a GPU answers with our static text engine).")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    umm = load_model(args.model, args.device)
    pair_set = load_pairs(args.pairs)
    pairs = [p for p in pair_set.pairs if p.stage == 2]
    pairs = random.Random(0).sample(pairs, min(args.n_pairs, len(pairs)))
    asked = [(p, swapped) for p in pairs for swapped in (False, True) for _ in range(args.samples)]
    texts: list[str] = []
    for start in range(0, len(asked), args.batch_size):
        batch = asked[start : start + args.batch_size]
        texts += umm.generate_text(
            [args.question.format(prompt=p.prompt, instruction=p.instruction) for p, _ in batch],
            images=[pair_set.images(p, swapped=swapped) for p, swapped in batch],
            max_new_tokens=160, do_sample=True, seeds=list(range(start, start + len(batch))),
            response_prefix=args.response_prefix,
        ).texts  # fmt: skip
    texts = [join_response(args.response_prefix, text) for text in texts]

    concepts_of = {item.id: set(item.concepts) for item in load_vie(args.items)}
    right: dict[str, list[bool]] = collections.defaultdict(list)
    follows: dict[str, list[bool]] = collections.defaultdict(list)
    asked_concept: dict[str, list[bool]] = collections.defaultdict(list)
    concepts = [recalled_concept(text) for text in texts]
    kinds = [kind_of(text, concept) for text, concept in zip(texts, concepts, strict=True)]
    for (pair, swapped), text, concept, kind in zip(asked, texts, concepts, kinds, strict=True):
        expected = FLIPPED[pair.answer] if swapped else pair.answer
        verdict = extract_verdict(text)
        correct = verdict is not None and verdict.lower() == expected.lower()
        for key in ("all", kind, pair.bad_kind, f"{pair.bad_kind} / {kind}"):
            right[key].append(correct)
        if kind != "recall, first image":  # a recall's concept is never None
            continue
        names_asked = concept.name in concepts_of[pair.item_id]
        for key in ("all", pair.category):
            asked_concept[key].append(names_asked)
        if not names_asked:
            continue
        first = parse_image(pair_set.images(pair, swapped=swapped)[0])
        truth = "Yes" if first is not None and scene_has_concept(first, concept) else "No"
        for key in ("all", concept.category):
            follows[key].append(verdict == truth)

    report = {
        "date": datetime.date.today().isoformat(),
        "model": args.model or "embedded",
        "pairs": args.pairs,
        "question": args.question,
        "response_prefix": args.response_prefix,
        "answers": len(texts),
        "share": {k: rate([kind == k for kind in kinds]) for k in sorted(set(kinds))},
        "accuracy": {k: rate(v) for k, v in sorted(right.items())},
        "verdict_follows_recalled_concept": {k: rate(v) for k, v in sorted(follows.items())},
        "recalls_checked": {k: len(v) for k, v in sorted(follows.items())},
        "recall_names_an_asked_concept": {k: rate(v) for k, v in sorted(asked_concept.items())},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
