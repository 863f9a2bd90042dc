"""Where the evaluator's answers to instruction pairs go wrong: the first step of its checklist that differs from the
oracle's.

    python benchmarks/judge_errors.py runs/NAME [--zero_shot] [--out FILE]

The embedded model answers "does the first image match the instruction better than the second image ?" with the
checklist pre-training taught it (docs/embedded-model.md): it describes the first image, recalls each concept it
finds in the instruction and checks it part by part, then checks what the concepts keep of the prompt; the verdict is
Yes when every mark is:

    <think> the first image shows a large blue circle at the center on a white background . icy means white , cyan
    and blue . the background white Yes , the blue circle Yes . keep : a large circle at the center : a large circle
    Yes , one shape Yes </think> <answer> Yes </answer>

The same checklist written from the oracle's reading of the first image and the item's spec is the oracle's verdict
(its agreement with the pair labels is reported). For the stage-2 pairs of a `seer run` folder's evaluation pairs
(`eval-evaluator/pairs`), in both orders, answered greedily as `seer eval --suite evaluator` answers them (with the
run's evaluator adapter, or none with --zero_shot), each answer gets the first step where it differs from the
oracle's checklist (parts compared as sets, so their order does not count):

    caption     the description is not the oracle's reading of the first image
    recall      a concept the item asks for is not recalled (its definition is not one of the think's sentences)
    concept     every asked concept recalled, but the concept checks name other parts or give other marks
    keep list   the keep check names other parts than the spec's keep records
    keep marks  the same parts, other marks
    right       the whole checklist is the oracle's
    unreadable  the oracle cannot read the first image

Reported per split: answers and wrong answers at each step.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from seer.data.pairs import load_pairs, oracle_view
from seer.data.vie import VIEItem, load_vie
from seer.eval.command import load_model
from seer.eval.evaluator import judge_pairs
from seer.eval.evaluator_suite import load_rlvr_run
from seer.models.adapters import EVALUATOR
from seer.worlds.shapeworld.concept_checks import concept_marks, marks_text
from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.keep_checks import record_mark
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.scene import Scene

STEPS = ("caption", "recall", "concept", "keep list", "keep marks", "right", "unreadable")
OPENING = "the first image shows "


def spaced(text: str) -> str:
    """`text` as the word-level tokenizer decodes it: commas spaced ("white , cyan"), single spaces."""
    return " ".join(text.replace(",", " , ").split())


def parts(text: str) -> set[str]:
    """The sentences and comma-separated parts of checklist text, as a set."""
    return {p for sentence in text.split(" . ") for p in sentence.split(" , ") if p}


def unmarked(text: str) -> set[str]:
    """The parts of checklist text without their Yes/No marks."""
    return {p.rsplit(" ", 1)[0] if p.endswith((" Yes", " No")) else p for p in parts(text)}


@dataclass(frozen=True)
class Checklist:
    """The checklist the oracle would write for an item's instruction question about one image (decoded spacing)."""

    caption: str
    definitions: tuple[str, ...]  # one per concept the item asks for
    concepts: str  # each definition followed by its marks, as pre-training writes them
    keep: str  # the keep marks of the spec's keep records
    passed: bool  # every mark holds: the oracle's verdict

    @classmethod
    def of(cls, scene: Scene, item: VIEItem, wholes: bool) -> Checklist:
        concepts = [get_concept(name) for name in item.concepts]
        sentences, marks = [], []
        for concept in concepts:
            sentences.append(concept.definition)
            concept_part = concept_marks(scene, concept, wholes)
            if concept_part:
                sentences.append(marks_text(concept_part))
            marks += concept_part
        keep = [record_mark(record, scene) for record in (item.spec or {}).get("keep", [])]
        return cls(
            caption=spaced(describe(scene)),
            definitions=tuple(spaced(concept.definition) for concept in concepts),
            concepts=spaced(" . ".join(sentences)),
            keep=spaced(marks_text(keep)),
            passed=all(ok for _, ok in marks + keep),
        )


def think_of(answer: str) -> str:
    """The think block of an answer, decoded spacing, without its tags."""
    return spaced(answer.split("</think>")[0].replace("<think>", " "))


def first_error(answer: str, expected: Checklist | None) -> str:
    """The first step (`STEPS`) where `answer`'s checklist differs from the oracle's (`expected`; None: unreadable)."""
    if expected is None:
        return "unreadable"
    caption, _, body = think_of(answer).removeprefix(OPENING).partition(" . ")
    if caption != expected.caption:
        return "caption"
    concepts, _, keep = body.partition(" . keep : ")
    if any(definition not in concepts.split(" . ") for definition in expected.definitions):
        return "recall"
    if parts(concepts) != parts(expected.concepts):
        return "concept"
    if unmarked(keep) != unmarked(expected.keep):
        return "keep list"
    return "keep marks" if parts(keep) != parts(expected.keep) else "right"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="A `seer run` folder (its rlvr/, data/eval.jsonl and eval-evaluator/pairs/).")
    parser.add_argument("--zero_shot", action="store_true", help="Answer with every adapter off.")
    parser.add_argument(
        "--no_whole_marks",
        action="store_true",
        help="Concepts checked as wholes carry no marks (corpora before run30; the shipped run33 has them).",
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run = Path(args.run)
    rlvr_args, adapter = load_rlvr_run(str(run / "rlvr"))
    model = load_model(rlvr_args.model, args.device)
    model.load_adapter(EVALUATOR, adapter)
    pair_dirs = sorted((run / "eval-evaluator" / "pairs").iterdir())
    if len(pair_dirs) != 1:
        raise SystemExit(f"{run}/eval-evaluator/pairs: expected one pair set, found {len(pair_dirs)}")
    pair_set = load_pairs(pair_dirs[0])
    items = {item.id: item for item in load_vie(run / "data" / "eval.jsonl")}
    pairs = pair_set.stage(2)

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    oracle_right: list[bool] = []
    with model.no_adapter() if args.zero_shot else model.use_adapter(EVALUATOR):
        for swapped in (False, True):
            judgements = judge_pairs(
                model, pair_set, pairs, rlvr_args.templates(), swapped=swapped, batch_size=args.batch_size,
                max_new_tokens=rlvr_args.max_completion_length,
            )  # fmt: skip
            for judgement in judgements:
                pair = judgement.pair
                scene = parse_image(oracle_view(pair_set.images(pair, swapped=swapped)[0]))
                expected = None if scene is None else Checklist.of(scene, items[pair.item_id], not args.no_whole_marks)
                if expected is not None:
                    oracle_right.append(("Yes" if expected.passed else "No") == judgement.expected)
                step = first_error(judgement.completion, expected)
                for split in (pair.split, "all"):
                    counts[split][step] += 1
                    counts[split][f"{step} (wrong)"] += not judgement.correct
                    counts[split]["answers"] += 1
                    counts[split]["wrong"] += not judgement.correct

    report = {
        "date": datetime.date.today().isoformat(),
        "run": str(run),
        "mode": "zero_shot" if args.zero_shot else "trained",
        "oracle_checklist_agrees_with_labels": round(sum(oracle_right) / max(1, len(oracle_right)), 4),
        "counts": {split: dict(sorted(c.items())) for split, c in sorted(counts.items())},
    }
    print(
        f"{run} ({report['mode']}); the oracle's checklist agrees with the pair labels on "
        f"{report['oracle_checklist_agrees_with_labels']:.3f} of the readable answers"
    )
    print("| first step that differs | " + " | ".join(f"{s}: answers (wrong)" for s in ("id", "ood", "all")) + " |")
    print("|---|---|---|---|")
    for step in STEPS:
        cells = [f"{counts[s][step]} ({counts[s][step + ' (wrong)']})" for s in ("id", "ood", "all")]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print(
        "| **all** | "
        + " | ".join(f"{counts[s]['answers']} ({counts[s]['wrong']})" for s in ("id", "ood", "all"))
        + " |"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
