"""Base capabilities of a unified model on ShapeWorld, judged by the oracle (never by the model itself).

    seer eval --suite base                       # runs every metric here on the embedded model (seer.eval.command)

The figures WORLD.md asks of the embedded UMM before SEER is meaningful ("The embedded UMM"):

    figure               measured                                                                     target
    t2i_1_object         the image of a literal 1-object prompt is read by the oracle as exactly that scene   >= 0.90
    t2i_3_objects        the same for 3-object prompts                                                         >= 0.75
    caption_exact        the greedy caption of a rendered scene parses (literal grammar) to exactly it         >= 0.90
    knowledge_qa         the greedy answer to a concept question has the expected answer block                >= 0.95
    vqa_yes_no           the greedy verdict to a yes/no question about one image (or one of two) is right      >= 0.90
    vie_naive_satisfied  the image of `instruction + " " + prompt` satisfies the instruction (cognitive gap)   <= 0.25
    vie_gold_passed      the image of the item's gold elaboration passes the oracle                           >= 0.85
    vq_fidelity          a rendered scene passed through the image tokenizer (encode -> decode) reads exactly >= 0.97

Held-out data: scenes come from string-keyed random streams (`eval_scenes`), which no integer pre-training seed
produces, and VIE items from the evaluation seed of `seer data` (`derive_eval_seed`). Knowledge questions are the
lexicon's own (knowing them is the point). Every generator seed is `sample_seed(seed, figure, index)`, so a run is
reproducible and the naive and gold images of one VIE item share their noise (the figures compare texts, not luck).

The module reads top to bottom: targets, pure scoring helpers, held-out data, then the metrics, each a function of a
model and data that returns a `Measurement` (the value, N, one JSON record per sample, and the images behind it).
The metrics run with whatever adapter state the model is in; the base suite runs them under `no_adapter()`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import torch
from PIL import Image
from tqdm.auto import tqdm

from seer.data.build import derive_eval_seed
from seer.data.vie import DIFFICULTIES, SPLITS
from seer.formats import join_response, naive_concatenation, parse_answer
from seer.models.base import UnifiedModel
from seer.worlds.shapeworld.concepts import CATEGORIES, LEXICON, qa_pairs
from seer.worlds.shapeworld.corpus import CAPTION_QUESTIONS, Example, sample_yes_no
from seer.worlds.shapeworld.grammar import describe, try_parse
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.judge import verify
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import MAX_OBJECTS, Scene, random_scene
from seer.worlds.shapeworld.taxonomy import item_field

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class Target:
    """What a figure must reach: `value >= bound` or `value <= bound`."""

    comparison: Literal[">=", "<="]
    bound: float

    def met_by(self, value: float) -> bool:
        """Whether `value` meets the target."""
        return value >= self.bound if self.comparison == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.comparison} {self.bound:.2f}"


TARGETS: dict[str, Target] = {
    "t2i_1_object": Target(">=", 0.90),
    "t2i_3_objects": Target(">=", 0.75),
    "caption_exact": Target(">=", 0.90),
    "knowledge_qa": Target(">=", 0.95),
    "vqa_yes_no": Target(">=", 0.90),
    "vie_naive_satisfied": Target("<=", 0.25),
    "vie_gold_passed": Target(">=", 0.85),
    "vq_fidelity": Target(">=", 0.97),
}


# ---------------------------------------------------------------------------------------------------------------
# Pure scoring helpers

_PUNCTUATION = ",.?;:!"


def normalize_spacing(text: str) -> str:
    """`text` with punctuation split off into words and whitespace collapsed.

    A word-level tokenizer decodes "white, cyan" as "white , cyan"; this makes both spellings the same string.
    """
    for mark in _PUNCTUATION:
        text = text.replace(mark, f" {mark} ")
    return " ".join(text.split())


def answer_correct(completion: str, expected: str) -> bool:
    """Whether `completion` is exactly one think block and one answer block (`formats.parse_answer`, strict) and the
    answer block equals `expected` up to spacing around punctuation. The think block is not graded."""
    parsed = parse_answer(completion)
    return parsed is not None and normalize_spacing(parsed[1]) == normalize_spacing(expected)


def caption_correct(caption: str, scene: Scene) -> bool:
    """Whether `caption` is a literal prompt (strict grammar; objects in any order) of exactly `scene`."""
    return try_parse(caption) == scene


def rate(flags: Sequence[bool]) -> float:
    """The fraction of True in `flags` (at least one)."""
    if not flags:
        raise ValueError("rate of no samples: a figure needs N >= 1")
    return sum(bool(f) for f in flags) / len(flags)


def rates_by(flags: Sequence[bool], groups: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """{group: {"value": rate, "n": count}} of `flags` split by `groups` (one label per flag), groups sorted."""
    if len(flags) != len(groups):
        raise ValueError(f"rates_by: {len(flags)} flags but {len(groups)} group labels")
    split: dict[str, list[bool]] = defaultdict(list)
    for flag, group in zip(flags, groups):
        split[group].append(flag)
    return {group: {"value": rate(split[group]), "n": len(split[group])} for group in sorted(split)}


def sample_seed(seed: int, figure: str, index: int) -> int:
    """The generator seed of sample `index` of `figure` in a suite run with `seed` (a 32-bit hash of the three).

    A hash, not `seed + index`, so that two figures (or two suite seeds) never share a sample's noise by accident.
    """
    digest = hashlib.sha256(f"seer-eval:{seed}:{figure}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def take_stratified(items: Sequence[T], n: int, key: Callable[[T], Hashable]) -> list[T]:
    """The first `n` items taken round robin over their groups (groups in first-seen order, items in order within
    a group), so any `n` covers the groups as evenly as it can."""
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    longest = max((len(g) for g in groups.values()), default=0)
    interleaved = [g[i] for i in range(longest) for g in groups.values() if i < len(g)]
    return interleaved[:n]


# ---------------------------------------------------------------------------------------------------------------
# Held-out data


def eval_scenes(seed: int, figure: str, n: int, *, n_objects: int | None = None) -> list[Scene]:
    """`n` random scenes for `figure`: `n_objects` objects each, or 1-4 uniformly when None.

    The stream is keyed by the string ``seer-eval/<seed>/<figure>``, so it is none of the integer-seeded streams
    pre-training draws its scenes from, and each figure has its own scenes.
    """
    rng = random.Random(f"seer-eval/{seed}/{figure}")
    return [random_scene(rng, n_objects=n_objects, max_objects=MAX_OBJECTS) for _ in range(n)]


@dataclass(frozen=True)
class KnowledgeQuestion:
    """One concept question and what the model was taught to answer (`corpus._knowledge_turn`)."""

    concept: str
    category: str
    question: str
    definition: str  # the think block of the taught answer
    answer: str  # the answer block of the taught answer


def knowledge_questions(n: int | None = None) -> list[KnowledgeQuestion]:
    """Every (concept, question) of the lexicon, or `n` of them taken round robin over the concepts."""
    questions = [
        KnowledgeQuestion(c.name, c.category, question, c.definition, answer)
        for c in LEXICON
        for question, answer in qa_pairs(c)
    ]
    return questions if n is None else take_stratified(questions, n, key=lambda q: q.concept)


def yes_no_questions(seed: int, n: int) -> list[Example]:
    """`n` yes/no questions about rendered scenes, half about one image and half about one of two (the corpus's
    `vqa` and `two_images` tasks), from the string-keyed stream ``seer-eval/<seed>/vqa_yes_no``."""
    rng = random.Random(f"seer-eval/{seed}/vqa_yes_no")
    return [sample_yes_no(("vqa", "two_images")[i % 2], rng) for i in range(n)]


YES_NO_TOKENS = 192  # token budget of a yes/no answer: its think block restates a 4-object question (~120 tokens)
VIE_CELLS = len(CATEGORIES) * len(DIFFICULTIES) * len(SPLITS)


def vie_cell(item: Any) -> tuple[str, str, str]:
    """(category, difficulty, split) of a VIE item (dict or `VIEItem`)."""
    return item_field(item, "category"), item_field(item, "difficulty"), item_field(item, "split")


def vie_eval_items(seed: int, n: int) -> list[dict[str, Any]]:
    """`n` VIE items from the evaluation seed of `seer data --seed seed`, spread evenly over the 24 cells
    (category x difficulty x split). `seer data`'s eval.jsonl is a deduplicated selection from the same stream."""
    per_cell = max(1, math.ceil(n / VIE_CELLS))
    items = generate_items(derive_eval_seed(seed), per_cell, splits=SPLITS, id_prefix="vie-eval")
    return take_stratified(items, n, key=vie_cell)


# ---------------------------------------------------------------------------------------------------------------
# Metrics: a model and data in, a Measurement out


class BaseSuiteModel(UnifiedModel, Protocol):
    """A `UnifiedModel` that also exposes its image tokenizer and image size (the janus backend does)."""

    image_size: int

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Image tokens (B, N) of `images`."""
        ...

    def decode_tokens(self, token_ids: torch.Tensor) -> list[Image.Image]:
        """Images decoded from image tokens (B, N)."""
        ...


@dataclass
class Measurement:
    """One figure measured on N samples, with the raw samples behind it.

    Attributes:
        value: the figure, a rate in [0, 1].
        n: the number of samples.
        samples: one JSON-able record per sample (inputs, seed, what the oracle read, the verdict).
        images: the images the figure judged, one per sample, in order (for sample grids).
        extras: diagnostic rates that explain the figure (e.g. how often the oracle could read the image at all).
        breakdown: {field: {group: {"value": rate, "n": count}}}, e.g. VIE figures by category.
    """

    value: float
    n: int
    samples: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)
    extras: dict[str, float] = field(default_factory=dict)
    breakdown: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def generate_images_batched(
    model: UnifiedModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    guidance_scale: float | None,
    temperature: float,
    batch_size: int,
    desc: str,
) -> list[Image.Image]:
    """One image per prompt, `batch_size` at a time; `temperature` 0 means greedy decoding; `guidance_scale` None
    means the model's own default."""
    images: list[Image.Image] = []
    with tqdm(total=len(prompts), desc=desc, unit="img") as bar:
        for part in _batches(len(prompts), batch_size):
            out = model.generate_images(
                prompts[part],
                seeds=seeds[part],
                guidance_scale=guidance_scale,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else 1.0,
            )
            images += out.images
            bar.update(len(out.images))
    return images


def generate_texts_batched(
    model: UnifiedModel,
    prompts: Sequence[str],
    images: Sequence[Sequence[Image.Image]] | None,
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str,
    response_prefix: str = "",
) -> list[str]:
    """The greedy answer to each prompt (with that sample's images, if any), `batch_size` at a time; with
    ``response_prefix`` written for the model, each answer is that prefix joined with what it wrote (`join_response`)."""
    texts: list[str] = []
    with tqdm(total=len(prompts), desc=desc, unit="text") as bar:
        for part in _batches(len(prompts), batch_size):
            out = model.generate_text(
                prompts[part],
                images=None if images is None else images[part],
                max_new_tokens=max_new_tokens,
                do_sample=False,
                response_prefix=response_prefix,
            )
            texts += [join_response(response_prefix, text) for text in out.texts]
            bar.update(len(out.texts))
    return texts


def t2i_accuracy(
    model: UnifiedModel,
    scenes: Sequence[Scene],
    seeds: Sequence[int],
    *,
    guidance_scale: float | None = None,
    temperature: float = 1.0,
    batch_size: int = 32,
    desc: str = "t2i",
) -> Measurement:
    """How often the image generated from a scene's literal prompt is read by the oracle as exactly that scene.

    `guidance_scale` None: the model's own default (`UnifiedModel.default_guidance_scale`).
    """
    prompts = [describe(s) for s in scenes]
    images = generate_images_batched(
        model, prompts, seeds, guidance_scale=guidance_scale, temperature=temperature, batch_size=batch_size, desc=desc
    )
    reads = [parse_image(image) for image in images]
    flags = [read == scene for read, scene in zip(reads, scenes)]
    samples = [
        {"prompt": p, "seed": s, "oracle_read": None if r is None else describe(r), "correct": f}
        for p, s, r, f in zip(prompts, seeds, reads, flags)
    ]
    return Measurement(rate(flags), len(flags), samples, images, {"readable": rate([r is not None for r in reads])})


def caption_accuracy(
    model: UnifiedModel,
    scenes: Sequence[Scene],
    *,
    image_size: int = 32,
    max_new_tokens: int = 64,
    batch_size: int = 32,
) -> Measurement:
    """How often the greedy caption of a rendered scene is a literal prompt of exactly that scene.

    The question cycles through the captioning questions pre-training uses (`corpus.CAPTION_QUESTIONS`).
    """
    questions = [CAPTION_QUESTIONS[i % len(CAPTION_QUESTIONS)] for i in range(len(scenes))]
    images = [render(scene, image_size) for scene in scenes]
    texts = generate_texts_batched(
        model, questions, [[image] for image in images], max_new_tokens=max_new_tokens, batch_size=batch_size,
        desc="captions",
    )  # fmt: skip
    flags = [caption_correct(text, scene) for text, scene in zip(texts, scenes)]
    samples = [
        {"question": q, "scene": describe(s), "caption": t, "correct": f}
        for q, s, t, f in zip(questions, scenes, texts, flags)
    ]
    extras = {"parses": rate([try_parse(text) is not None for text in texts])}
    return Measurement(rate(flags), len(flags), samples, images, extras)


def knowledge_accuracy(
    model: UnifiedModel,
    questions: Sequence[KnowledgeQuestion],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
) -> Measurement:
    """How often the greedy answer to a concept question has the taught answer block (`answer_correct`)."""
    texts = generate_texts_batched(
        model, [q.question for q in questions], None, max_new_tokens=max_new_tokens, batch_size=batch_size,
        desc="knowledge",
    )  # fmt: skip
    flags = [answer_correct(text, q.answer) for text, q in zip(texts, questions)]
    parsed = [parse_answer(text) for text in texts]
    samples = [
        {"concept": q.concept, "question": q.question, "expected": q.answer, "output": t, "correct": f}
        for q, t, f in zip(questions, texts, flags)
    ]
    extras = {
        "format_ok": rate([p is not None for p in parsed]),
        # Diagnostic only: can the definition be recalled in the think block, where a policy would reuse it?
        "think_is_definition": rate([
            p is not None and normalize_spacing(p[0]) == normalize_spacing(q.definition)
            for p, q in zip(parsed, questions)
        ]),
    }
    breakdown = {"category": rates_by(flags, [q.category for q in questions])}
    return Measurement(rate(flags), len(flags), samples, extras=extras, breakdown=breakdown)


def yes_no_accuracy(
    model: UnifiedModel,
    questions: Sequence[Example],
    *,
    image_size: int = 32,
    max_new_tokens: int = YES_NO_TOKENS,
    batch_size: int = 32,
) -> Measurement:
    """How often the greedy verdict (the answer block) to a yes/no question about rendered scenes is the true one.

    The think block is not graded.
    """
    images = [[render(scene, image_size) for scene in q.scenes] for q in questions]
    texts = generate_texts_batched(
        model, [q.prompt for q in questions], images, max_new_tokens=max_new_tokens, batch_size=batch_size,
        desc="yes/no questions",
    )  # fmt: skip
    expected = [parse_answer(q.target)[1] for q in questions]  # type: ignore[index]  # the corpus's own format
    flags = [answer_correct(text, answer) for text, answer in zip(texts, expected)]
    samples = [
        {"task": q.task, "question": q.prompt, "scenes": [describe(s) for s in q.scenes], "expected": e,
         "output": t, "correct": f}
        for q, e, t, f in zip(questions, expected, texts, flags)
    ]  # fmt: skip
    extras = {
        "format_ok": rate([parse_answer(t) is not None for t in texts]),
        "yes_expected": rate([e == "Yes" for e in expected]),  # the constant-answer baseline is max(this, 1 - this)
    }
    breakdown = {"task": rates_by(flags, [q.task for q in questions])}
    return Measurement(rate(flags), len(flags), samples, [im[0] for im in images], extras, breakdown)


def _vie_breakdown(flags: Sequence[bool], items: Sequence[Any]) -> dict[str, dict[str, dict[str, float | int]]]:
    return {key: rates_by(flags, [item_field(it, key) for it in items]) for key in ("category", "difficulty", "split")}


def cognitive_gap(
    model: UnifiedModel,
    items: Sequence[Any],
    seeds: Sequence[int],
    *,
    guidance_scale: float | None = None,
    temperature: float = 1.0,
    batch_size: int = 32,
) -> tuple[Measurement, Measurement]:
    """The cognitive gap on VIE items (dicts or `VIEItem`s with `spec` and `gold`), as two measurements:

    - naive: how often the image of `naive_concatenation(instruction, prompt)` satisfies the instruction (low: the
      generator does not understand the instruction);
    - gold: how often the image of the gold elaboration passes (satisfied and prompt kept; high: the generator can
      draw what is meant when it is said literally).

    Item i's two images share the generator seed `seeds[i]`.
    """
    naive = [naive_concatenation(item_field(it, "instruction"), item_field(it, "prompt")) for it in items]
    gold = [item_field(it, "gold") for it in items]
    # One pass over both prompt lists keeps batches full.
    images = generate_images_batched(
        model, naive + gold, list(seeds) * 2, guidance_scale=guidance_scale, temperature=temperature,
        batch_size=batch_size, desc="vie",
    )  # fmt: skip
    naive_images, gold_images = images[: len(items)], images[len(items) :]
    measurements = []
    for texts, imgs, judged in ((naive, naive_images, "satisfied"), (gold, gold_images, "passed")):
        verdicts = [verify(image, it) for image, it in zip(imgs, items)]
        flags = [getattr(v, judged) for v in verdicts]
        samples = [
            {
                "id": item_field(it, "id"),
                "cell": "/".join(vie_cell(it)),
                "text": text,
                "seed": seed,
                "oracle_read": None if v.scene is None else describe(v.scene),
                "satisfied": v.satisfied,
                "kept": v.kept,
                "failures": v.failures,
                "correct": flag,
            }
            for it, text, seed, v, flag in zip(items, texts, seeds, verdicts, flags)
        ]
        extras = {
            "readable": rate([v.scene is not None for v in verdicts]),
            "satisfied": rate([v.satisfied for v in verdicts]),
            "passed": rate([v.passed for v in verdicts]),
        }
        measurements.append(Measurement(rate(flags), len(flags), samples, imgs, extras, _vie_breakdown(flags, items)))
    return measurements[0], measurements[1]


def vq_fidelity(
    model: BaseSuiteModel,
    scenes: Sequence[Scene],
    *,
    image_size: int = 32,
    batch_size: int = 32,
) -> Measurement:
    """How often a rendered scene, passed through the model's image tokenizer (encode -> decode), is read by the
    oracle as exactly that scene: the ceiling on what generated images can show."""
    originals = [render(scene, image_size) for scene in scenes]
    round_trips: list[Image.Image] = []
    for part in tqdm(_batches(len(scenes), batch_size), desc="vq", unit="batch"):
        round_trips += model.decode_tokens(model.encode_images(originals[part]))
    reads = [parse_image(image) for image in round_trips]
    flags = [read == scene for read, scene in zip(reads, scenes)]
    samples = [
        {"scene": describe(s), "oracle_read": None if r is None else describe(r), "correct": f}
        for s, r, f in zip(scenes, reads, flags)
    ]
    extras = {"readable": rate([r is not None for r in reads])}
    return Measurement(rate(flags), len(flags), samples, round_trips, extras)
