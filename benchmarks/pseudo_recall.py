"""Does a model recall a pseudo-concept's meaning when a rewrite asks for it by name, and draw it?

    python benchmarks/pseudo_recall.py --model DIR --samples 4 --out x.json

Pseudo-concepts (`seer.worlds.shapeworld.corpus.PSEUDO_NAMES`, corpus run23) are made-up names with one meaning in
the whole corpus ("version two five one means ..."), learned from knowledge questions. Pre-training's rewrites ask for
all but the last `PSEUDO_HELD_OUT` by name, with a think that recalls the meaning from memory; the held-out ones are
only ever met in knowledge questions, as SEER's concepts are. Whether their recall carries over to the rewrite frame
is what this measures, for a model trained on run23 against one that never saw them.

For each name: the knowledge question "what does N mean?" (greedy; right when the answer is the meaning), and
``--prompts`` random prompts the world's gold editor can edit for it, each asked "rewrite the prompt : P . use : N
[for the <shape>]" ``--samples`` times at temperature 1 (1: greedy). A think *recalls* when it states "N means
<meaning>"; a rewrite *draws* the concept when its descriptor parses strictly (`seer.rl.reprompt.parse_descriptor`)
into a scene that shows it (`scene_has_concept`). Reported for the asked names and the held-out ones.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import random
from pathlib import Path

import torch

from seer.eval.command import load_model
from seer.formats import parse_answer
from seer.rl.reprompt import REPROMPT_TEMPLATE, parse_descriptor
from seer.worlds.shapeworld.concepts import scene_has_concept
from seer.worlds.shapeworld.corpus import (
    PSEUDO_CONCEPTS,
    PSEUDO_HELD_OUT,
    PSEUDO_NAMES,
    PSEUDO_QUESTIONS,
    named_definition,
)
from seer.worlds.shapeworld.grammar import describe, parse
from seer.worlds.shapeworld.items import elaborate, nameable_subjects
from seer.worlds.shapeworld.scene import random_scene


def rewrite_questions(name: str, n: int, rng: random.Random) -> list[str]:
    """`n` rewrites asking for pseudo-concept `name`, on random prompts its meaning can be drawn on (a subject
    concept on a shape the prompt names once)."""
    concept = PSEUDO_CONCEPTS[name]
    questions = []
    while len(questions) < n:
        prompt = random_scene(rng, max_objects=3)
        subject = rng.choice(nameable_subjects(prompt) or [None]) if concept.rule.subject_based else None
        if concept.rule.subject_based and subject is None:
            continue
        if elaborate(prompt, subject, [concept], rng) is None:
            continue
        asked = name + (f" for the {subject.shape}" if subject is not None else "")
        questions.append(REPROMPT_TEMPLATE.format(prompt=describe(prompt), instruction=asked))
    return questions


def words(text: str) -> str:
    """`text` with commas as the tokenizer writes them (" , "), so a definition compares with generated text."""
    return " ".join(text.replace(",", " , ").split())


def meaning_of(name: str) -> str:
    return words(named_definition(name, PSEUDO_CONCEPTS[name]))


def draws(text: str, name: str) -> bool:
    descriptor = parse_descriptor(text).descriptor  # None unless it parses
    return descriptor is not None and scene_has_concept(parse(descriptor), PSEUDO_CONCEPTS[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="Model directory (default: the embedded model).")
    parser.add_argument("--prompts", type=int, default=4, help="Rewrite prompts per pseudo-concept.")
    parser.add_argument("--samples", type=int, default=4, help="Sampled rewrites per prompt (1: greedy).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the prompts.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    umm = load_model(args.model, args.device)
    rng = random.Random(args.seed)
    held_out = set(PSEUDO_NAMES[-PSEUDO_HELD_OUT:])

    def group(name: str) -> str:
        return "held_out" if name in held_out else "asked"

    knowledge = collections.defaultdict(list)
    answers = umm.generate_text([PSEUDO_QUESTIONS[0].format(name=n) for n in PSEUDO_NAMES], max_new_tokens=48,
                                do_sample=False).texts  # fmt: skip
    for name, text in zip(PSEUDO_NAMES, answers):
        answer = (parse_answer(text) or ("", ""))[1]
        knowledge[group(name)].append(words(answer) == meaning_of(name))

    jobs = [(name, q) for name in PSEUDO_NAMES for q in rewrite_questions(name, args.prompts, rng)]
    questions = [q for _, q in jobs for _ in range(args.samples)]
    texts: list[str] = []
    for start in range(0, len(questions), 128):
        batch = questions[start : start + 128]
        texts += umm.generate_text(batch, max_new_tokens=96, do_sample=args.samples > 1,
                                   seeds=list(range(start, start + len(batch)))).texts  # fmt: skip
    recalled, drawn = collections.defaultdict(list), collections.defaultdict(list)
    drawn_if = collections.defaultdict(list)
    for n, text in enumerate(texts):
        name = jobs[n // args.samples][0]
        think = text.split("</think>")[0]
        recall = meaning_of(name) in words(think)
        recalled[group(name)].append(recall)
        drawn[group(name)].append(draws(text, name))
        drawn_if[f"{group(name)}, {'recalled' if recall else 'not recalled'}"].append(drawn[group(name)][-1])

    def rate(v: list) -> dict:
        return {"rate": round(sum(v) / len(v), 4), "n": len(v)}

    figures = {
        "date": datetime.date.today().isoformat(),
        "model": args.model or "embedded",
        "prompts_per_name": args.prompts,
        "samples_per_prompt": args.samples,
        "knowledge_right": {k: rate(v) for k, v in sorted(knowledge.items())},
        "rewrite_think_recalls": {k: rate(v) for k, v in sorted(recalled.items())},
        "rewrite_draws_it": {k: rate(v) for k, v in sorted(drawn.items())},
        "draws_it_if": {k: rate(v) for k, v in sorted(drawn_if.items())},
        "examples": {
            name: texts[i * args.prompts * args.samples] for i, name in enumerate(PSEUDO_NAMES) if i % 20 == 0
        },
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
