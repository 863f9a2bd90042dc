"""How often the base model's *sampled* reprompts already satisfy an item: what RLMT has to reinforce.

    python benchmarks/reprompt_exploration.py --model src/seer/assets/shapeworld-tiny --samples 8 --out x.json
    python benchmarks/reprompt_exploration.py --template "rewrite the prompt : {prompt} . instruction : {instruction}"
    python benchmarks/reprompt_exploration.py --literal --samples 1    # greedy, the instruction's literal meaning

GRPO can only amplify what the policy samples. For held-out evaluation items (`seer data`'s evaluation set for
``--data_seed``, every other item, so both splits and difficulties), ``--samples`` reprompts per item are drawn at
``--temperature`` (RLMT: 1) from the model with every adapter off, under the reprompter's question. Each is parsed
strictly (`seer.rl.reprompt.parse_descriptor`, as RLMT's reward does) and its descriptor classified against the
item's spec at the text level (`seer.worlds.shapeworld.taxonomy`: success / omission / hallucination, or why it was
rejected), without rendering: the generator draws gold descriptors right ~99% of the time, so this isolates the
policy. Reported: the share of each outcome, success by split and difficulty, the items with at least one success
and pass@k (k up to ``--samples``), how many thinks recall a concept (" means "), and success when the think
recalls a concept the item asks for against when it does not (does recall lead to success, or is success luck?).

``--literal`` puts the literal meaning of the item's concepts ("white, cyan and blue", "... for the circle") in
the instruction's place, the pre-training frame of a constrained rewrite: how well the model applies a constraint
it is given, apart from recalling it. ``--forced_recall`` writes the think for the model, the right recall of the
item's concepts ("icy means white, cyan and blue"), and generates only the answer: how well it applies a recall.
``--samples 1`` decodes greedily.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import math
import re
from pathlib import Path

import torch

from seer.data.build import generate_sets
from seer.eval.command import load_model
from seer.rl.reprompt import REPROMPT_TEMPLATE, parse_descriptor
from seer.worlds.shapeworld.concepts import constraint_text, get_concept, recalled_concept
from seer.worlds.shapeworld.scene import SHAPES
from seer.worlds.shapeworld.taxonomy import classify_reprompt


def outcome(text: str, item) -> str:
    reprompt = parse_descriptor(text)
    return classify_reprompt(reprompt.descriptor, item) if reprompt.descriptor else reprompt.reason


def concept_texts(item, text_of) -> list[str]:
    """`text_of(concept)` for each of the item's concepts, a subject concept's followed by "for the <shape>" (the
    shape the instruction names), as pre-training's constrained rewrites write them."""
    words = set(re.sub(r"[^a-z ]", " ", item.instruction).split())
    texts = []
    for name in item.concepts:
        concept = get_concept(name)
        text = text_of(concept)
        if concept.rule.subject_based:
            text += " for the " + next(s for s in SHAPES if words & {s, s + "s", s + "es"})
        texts.append(text)
    return texts


def literal_instruction(item) -> str:
    """The literal constraints the item's concepts mean ("white, cyan and blue . use : ...")."""
    return " . use : ".join(concept_texts(item, constraint_text))


def right_recall(item) -> str:
    """The think that recalls the item's concepts ("icy means white, cyan and blue . ..."), as pre-training's
    named constraints write it."""
    return " . ".join(concept_texts(item, lambda concept: concept.definition))


@contextlib.contextmanager
def forced_thinks(umm, thinks: dict[str, str]):
    """While open, `umm.generate_text` answers each question after "<think> T </think>" with its T from `thinks`:
    the think is given, the answer generated."""
    format_prompt = umm.format_prompt
    umm.format_prompt = lambda prompt, n_images: f"{format_prompt(prompt, n_images)} <think> {thinks[prompt]} </think>"
    try:
        yield
    finally:
        umm.format_prompt = format_prompt


def pass_at_k(successes: list[int], samples: int, k: int) -> float:
    """The unbiased estimate of P(at least one of k samples succeeds), averaged over items (Chen et al., 2021):
    1 - C(n - c, k) / C(n, k) for an item with c successes in n samples."""
    return sum(1 - math.comb(samples - c, k) / math.comb(samples, k) for c in successes) / len(successes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="Model directory (default: the embedded model).")
    parser.add_argument("--template", default=REPROMPT_TEMPLATE, help="The reprompter's question.")
    parser.add_argument("--samples", type=int, default=8, help="Sampled reprompts per item (1: greedy).")
    parser.add_argument("--temperature", type=float, default=1.0, help="Sampling temperature (RLMT's rollouts: 1.0).")
    parser.add_argument("--forced_recall", action="store_true",
                        help="Force the think to recall the item's concepts right; only the answer is generated.")
    parser.add_argument("--literal", action="store_true", help="The concepts' literal meaning for the instruction.")
    parser.add_argument("--data_seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (a GPU answers with our static text engine).")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    umm = load_model(args.model, args.device)
    _, eval_items = generate_sets(args.data_seed, 1, 10)
    items = eval_items[::2]
    asked = [literal_instruction(i) if args.literal else i.instruction for i in items]
    questions = [args.template.format(prompt=i.prompt, instruction=a) for i, a in zip(items, asked)]
    thinks = {q: right_recall(i) for q, i in zip(questions, items)} if args.forced_recall else None
    questions = [q for q in questions for _ in range(args.samples)]
    texts: list[str] = []
    with forced_thinks(umm, thinks) if thinks else contextlib.nullcontext():
        for start in range(0, len(questions), args.batch_size):
            batch = questions[start : start + args.batch_size]
            seeds = list(range(start, start + len(batch)))
            texts += umm.generate_text(batch, max_new_tokens=96, do_sample=args.samples > 1, seeds=seeds,
                                      temperature=args.temperature).texts
    if thinks:
        texts = [f"<think> {thinks[q]} </think> {t}" for q, t in zip(questions, texts)]

    outcomes = collections.Counter()
    by_cell: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    solved, recalls = collections.Counter(), 0
    success_if: dict[str, list[bool]] = collections.defaultdict(list)
    for n, text in enumerate(texts):
        item = items[n // args.samples]
        result = outcome(text, item)
        outcomes[result] += 1
        by_cell[f"{item.split}/{item.difficulty}"][result] += 1
        if result == "success":
            solved[item.id] += 1
        think = text.split("</think>")[0]
        recalls += " means " in think
        concept = recalled_concept(think)
        asked = concept is not None and concept.name in item.concepts
        success_if["recalls an asked concept" if asked else "no asked concept recalled"].append(result == "success")
    total = len(texts)
    figures = {
        "date": datetime.date.today().isoformat(),
        "model": args.model or "embedded",
        "template": args.template,
        "literal": args.literal,
        "forced_recall": args.forced_recall,
        "items": len(items),
        "samples_per_item": args.samples,
        "temperature": args.temperature,
        "outcomes": {k: round(v / total, 4) for k, v in outcomes.most_common()},
        "success_by_cell": {k: round(c["success"] / sum(c.values()), 4) for k, c in sorted(by_cell.items())},
        "items_with_a_success": len(solved),
        "pass_at_k": {k: round(pass_at_k([solved[i.id] for i in items], args.samples, k), 4)
                      for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= args.samples},
        "recall_in_think": round(recalls / total, 4),
        "success_if": {k: {"rate": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(success_if.items())},
        "examples": texts[: 4 * args.samples : args.samples],
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
