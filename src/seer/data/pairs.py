"""RLVR image pairs: does the first image match the prompt (stage 1) or the instruction (stage 2) better than the
second? Images come from the model's own frozen generator; every label is verified by the oracle, never assumed.

    pairs = build_or_load_pairs(model, items, "runs/rlvr/pairs", "train", PairSettings(seed=0, model_id="..."))
    first, second = pairs.images(pairs.pairs[0])      # in the order the question shows them
    templates.text(pairs.pairs[0])                    # the question; pair.answer is "Yes" or "No"

Candidates, per VIE item (`spec` and `gold` required: they are what the oracle checks):

- stage 1, basic alignment: the image of the item's literal prompt against the image of a perturbed prompt
  (`perturb_scene`: one attribute changed); the question is about the *prompt*.
- stage 2, instruction: the image of the gold elaboration against the image of a failing reprompt, one candidate
  per kind in `PairSettings.failures`: ``naive`` (the naive concatenation ``instruction + " " + prompt``, the
  baseline SEER improves on), ``omission`` (the prompt itself: the instruction ignored) and ``hallucination`` (the
  gold with one attribute changed so that it fails); the question is about the *instruction*.

All images of one item share one generator seed, so a pair differs by its text, not by sampling noise. A candidate
is kept only if the oracle confirms its ordering: the good image passes (stage 1: it reads back as exactly the
prompt's scene; stage 2: `judge.verify(...).passed`) and the bad one does not. Then, per stage, the kept pairs get
their order: sorted by failure kind, shuffled (seeded) within a kind, and alternately shown good-first ("Yes") and
good-second ("No"), so Yes and No are exactly balanced per stage (an odd pair out is dropped) and per kind up to one.
`PairSet.summary` counts candidates, kept pairs and every drop with its reason.

Built pairs are cached: ``<cache_root>/<name>-<key>/`` holds the images as PNG, ``pairs.jsonl`` (one `Pair` per
line) and ``summary.json``; the key hashes the items, the settings and the model's identity, so a run with the same
inputs re-uses them and any change builds a new set. Building is deterministic in `PairSettings.seed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from tqdm.auto import tqdm

from seer.data.curriculum import INSTRUCTION_STAGE, PROMPT_STAGE, STAGE_NAMES
from seer.data.vie import VIEItem
from seer.errors import SeerError
from seer.formats import naive_concatenation
from seer.worlds.shapeworld.grammar import GrammarError, describe, parse, try_parse
from seer.worlds.shapeworld.items import failing_elaborations, perturb_scene
from seer.worlds.shapeworld.judge import verify
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import IMAGE_SIZES, render

FAILURE_KINDS: tuple[str, ...] = ("naive", "omission", "hallucination")
PERTURBED = "perturbed"  # the bad kind of every stage-1 pair
PAIRS_FILE, SUMMARY_FILE, IMAGE_DIR = "pairs.jsonl", "summary.json", "images"
FORMAT_VERSION = 1  # part of the cache key: bump when what a cached set contains changes


class PairGenerator(Protocol):
    """What pair building needs of a model: its frozen generator (every `UnifiedModel` has these)."""

    def generate_images(
        self, prompts: Sequence[str], *, seeds: Sequence[int] | None = None, guidance_scale: float | None = None,
        do_sample: bool = True, temperature: float = 1.0,
    ) -> Any:  # fmt: skip
        """An object whose ``.images`` holds one RGB image per prompt."""
        ...

    def no_adapter(self) -> AbstractContextManager[None]:
        """Context in which the base model (the frozen generator) runs."""
        ...


@dataclass
class RenderedImages:
    """What `LiteralRenderer.generate_images` returns (the ``.images`` part of an `ImageGeneration`)."""

    images: list[Image.Image]


class LiteralRenderer:
    """A perfect literal generator: draws the scene a text describes with the ShapeWorld renderer.

    For smoke runs and timing with random-weight models, whose own generator draws noise the oracle rejects; SEER
    proper uses the model's generator. Like a generator trained on literal prompts, it ignores words it cannot read
    in front of a literal prompt (so the naive concatenation draws the prompt); a text with no literal ending draws
    a blank image, which the oracle reads as no scene.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.render_size = max(s for s in IMAGE_SIZES if s <= max(size, IMAGE_SIZES[0]))  # 32 or 64 px

    def no_adapter(self) -> AbstractContextManager[None]:
        """No adapters to disable."""
        return nullcontext()

    def generate_images(self, prompts: Sequence[str], **kwargs: Any) -> RenderedImages:
        """One rendered image per prompt; seeds and sampling settings change nothing."""
        return RenderedImages([self._draw(text) for text in prompts])

    def _draw(self, text: str) -> Image.Image:
        words = text.split()
        for start in range(len(words)):  # the longest literal ending
            scene = try_parse(" ".join(words[start:]))
            if scene is not None:
                # The renderer draws 32 or 64 px; a larger model's images are the same pixels scaled up.
                return render(scene, self.render_size).resize((self.size, self.size), Image.Resampling.NEAREST)
        return Image.new("RGB", (self.size, self.size), (0, 0, 0))


@dataclass(frozen=True)
class PairSettings:
    """Everything besides the items that decides which pairs are built (all of it but `batch_size` is in the key)."""

    seed: int = field(
        default=0, metadata={"help": "Generator seeds, perturbations, hallucinations and pair order derive from it."}
    )
    guidance_scale: float = field(default=5.0, metadata={"help": "Classifier-free guidance of the frozen generator."})
    temperature: float = field(default=1.0, metadata={"help": "Image sampling temperature; 0 = greedy decoding."})
    failures: tuple[str, ...] = field(
        default=FAILURE_KINDS, metadata={"help": "The failing reprompts of stage-2 candidates (FAILURE_KINDS)."}
    )
    stages: tuple[int, ...] = field(
        default=(PROMPT_STAGE, INSTRUCTION_STAGE), metadata={"help": "Stages to build (held-out sets need stage 1)."}
    )
    model_id: str = field(
        default="", metadata={"help": "Identifies the generator's weights: another model's pairs are other pairs."}
    )
    batch_size: int = field(default=32, metadata={"help": "Images per generation call (changes no pair)."})

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.failures if kind not in FAILURE_KINDS]
        if unknown or not self.failures:
            raise ValueError(f"stage2_failures: expected a non-empty subset of {list(FAILURE_KINDS)}, got {unknown}")
        if not self.stages or set(self.stages) - {PROMPT_STAGE, INSTRUCTION_STAGE}:
            raise ValueError(f"stages: expected some of [1, 2], got {list(self.stages)}")

    def key_fields(self) -> dict[str, Any]:
        """The settings that change the pairs."""
        out = asdict(self)
        del out["batch_size"]
        out["failures"] = list(self.failures)
        out["stages"] = list(self.stages)
        return out


@dataclass(frozen=True)
class Pair:
    """One verified pair and the order the question shows it in.

    Attributes:
        id: ``<item id>:<stage>:<bad kind>``.
        stage: 1 (question about the prompt) or 2 (about the instruction).
        item_id, category, difficulty, split, prompt, instruction: from the VIE item.
        good_text, bad_text: what the good and the bad image were generated from.
        bad_kind: "perturbed" (stage 1), or the failure kind of stage 2.
        seed: the generator seed of both images.
        good_image, bad_image: the PNG files, relative to the pair set's directory.
        good_first: whether the question shows the good image first (the answer is then "Yes").
    """

    id: str
    stage: int
    item_id: str
    category: str
    difficulty: str
    split: str
    prompt: str
    instruction: str
    good_text: str
    bad_text: str
    bad_kind: str
    seed: int
    good_image: str
    bad_image: str
    good_first: bool

    @property
    def answer(self) -> str:
        """The verified answer to "does the first image match ... better than the second image?"."""
        return "Yes" if self.good_first else "No"

    @property
    def question_type(self) -> str:
        """What the question is about: "prompt" (stage 1) or "instruction" (stage 2)."""
        return STAGE_NAMES[self.stage]


@dataclass(frozen=True)
class QuestionTemplates:
    """How a pair becomes the evaluator's user message (recipe keys, so a model's own wording can be used).

    The message is ``system_prompt question answer_suffix`` (empty parts left out), where the question is
    `prompt_question` (stage 1) or `instruction_question` (stage 2) with ``{prompt}`` and ``{instruction}`` filled in.
    The system prompt is the first sentence of the user turn, not a system turn: `UnifiedModel.generate_text` formats
    single user turns, and training and evaluation must see the same text.
    """

    prompt_question: str = field(metadata={"help": "Stage-1 question with a {prompt} placeholder."})
    instruction_question: str = field(metadata={"help": "Stage-2 question with {prompt} and {instruction}."})
    answer_suffix: str = field(default="", metadata={"help": "Text after the question (the answer-format rule)."})
    system_prompt: str = field(default="", metadata={"help": "Text before the question."})
    response_prefix: str = field(
        default="", metadata={"help": "Start of the evaluator's answer, written for it (`with_response_prefix`)."}
    )

    def __post_init__(self) -> None:
        for key, template, required in (
            ("prompt_question", self.prompt_question, {"prompt"}),
            ("instruction_question", self.instruction_question, {"prompt", "instruction"}),
        ):
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
            except ValueError as error:
                raise ValueError(f"{key}: not a valid template ({error}); write literal braces as {{{{ }}}}") from None
            if names - {"prompt", "instruction"} or required - names:
                raise ValueError(
                    f"{key}: expected the placeholders {sorted(required)} (and no others), got {sorted(names)}"
                )

    def question(self, stage: int, prompt: str, instruction: str) -> str:
        """The question of a stage-`stage` pair about `prompt` (and `instruction`)."""
        template = self.prompt_question if stage == PROMPT_STAGE else self.instruction_question
        return template.format(prompt=prompt, instruction=instruction)

    def text(self, pair: Pair) -> str:
        """The whole user message for `pair`."""
        parts = (self.system_prompt, self.question(pair.stage, pair.prompt, pair.instruction), self.answer_suffix)
        return " ".join(part for part in parts if part)


@dataclass
class PairSet:
    """Verified pairs and the directory their images are in."""

    root: Path
    pairs: list[Pair]
    summary: dict[str, Any] = field(default_factory=dict)

    def stage(self, stage: int) -> list[Pair]:
        """The pairs of one stage, in order."""
        return [p for p in self.pairs if p.stage == stage]

    def images(self, pair: Pair, swapped: bool = False) -> tuple[Image.Image, Image.Image]:
        """(first, second) as the question shows them; `swapped` shows them the other way round."""
        good = load_png(self.root / pair.good_image)
        bad = load_png(self.root / pair.bad_image)
        return (good, bad) if pair.good_first != swapped else (bad, good)


def load_png(path: Path) -> Image.Image:
    """An RGB image from a PNG file, fully read (the file is closed on return); SeerError (one line) when the file
    is missing or not a readable image."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise SeerError(
            f"{path}: not a readable image ({type(error).__name__}); delete the pair cache {path.parent} to rebuild it"
        ) from None


def check_png(path: Path) -> None:
    """SeerError (one line) unless `path` is a PNG whose header and chunks read cleanly (no pixel decoding)."""
    try:
        with Image.open(path) as image:
            image.verify()
            if image.format != "PNG":
                raise ValueError(f"a {image.format} file, not a PNG")
    except (OSError, SyntaxError, ValueError) as error:
        raise SeerError(
            f"{path}: not a readable image ({error}); delete the pair cache {path.parent} to rebuild it"
        ) from None


# ---------------------------------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Candidate:
    """A pair before the oracle has checked it."""

    stage: int
    item: VIEItem
    good_text: str
    bad_text: str
    bad_kind: str
    seed: int


def pair_seed(seed: int, item_id: str) -> int:
    """The generator seed of every image of one item (a 32-bit hash, so items never share noise by accident)."""
    digest = hashlib.sha256(f"seer-pairs:{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def check_pair_items(items: Sequence[VIEItem], where: str) -> None:
    """Every item needs a literal prompt, a spec and a gold elaboration: the oracle verifies the labels with them."""
    for item in items:
        for name in ("spec", "gold"):
            if getattr(item, name) is None:
                raise SeerError(
                    f"{where}: item {item.id!r}: field '{name}' is missing; RLVR pairs need it (labels are verified "
                    "by the oracle, never assumed)"
                )
        try:
            parse(item.prompt)
        except GrammarError as error:
            raise SeerError(
                f"{where}: item {item.id!r}: field 'prompt': not a literal ShapeWorld prompt ({error})"
            ) from None


def candidates(items: Sequence[VIEItem], settings: PairSettings) -> list[Candidate]:
    """The stage-1 candidate and the stage-2 candidates (one per failure kind) of every item, in item order."""
    out = []
    for item in items:
        rng = random.Random(f"seer-pairs/{settings.seed}/{item.id}")
        seed = pair_seed(settings.seed, item.id)
        # Both random draws happen for every item, so building one stage never changes the other stage's pairs.
        perturbed = describe(perturb_scene(parse(item.prompt), rng))
        failing = {
            "naive": naive_concatenation(item.instruction, item.prompt),
            "omission": item.prompt,
            "hallucination": failing_elaborations(item, rng)["hallucination"],
        }
        if PROMPT_STAGE in settings.stages:
            out.append(Candidate(PROMPT_STAGE, item, item.prompt, perturbed, PERTURBED, seed))
        if INSTRUCTION_STAGE in settings.stages:
            for kind in settings.failures:
                out.append(Candidate(INSTRUCTION_STAGE, item, item.gold, failing[kind], kind, seed))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The oracle's check


def oracle_view(image: Image.Image) -> Image.Image:
    """The image at a size the oracle reads (32 or 64 px); larger generations are box-filtered down to 64."""
    if image.width == image.height and image.width in IMAGE_SIZES:
        return image
    return image.convert("RGB").resize((64, 64), Image.Resampling.BOX)


def passes(stage: int, image: Image.Image, item: VIEItem) -> bool:
    """Whether the oracle says `image` matches the item's prompt (stage 1) or satisfies its instruction (stage 2)."""
    if stage == PROMPT_STAGE:
        return parse_image(oracle_view(image)) == parse(item.prompt)
    return verify(oracle_view(image), item).passed


def drop_reason(candidate: Candidate, good: Image.Image, bad: Image.Image) -> str | None:
    """Why the oracle rejects the candidate's ordering ("good_failed" first, then "bad_passed"), or None."""
    if not passes(candidate.stage, good, candidate.item):
        return "good_failed"
    if passes(candidate.stage, bad, candidate.item):
        return "bad_passed"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Building


def image_name(text: str, seed: int) -> str:
    """The PNG file name of the image of `text` at `seed` (a content key: equal requests share one file)."""
    return hashlib.sha1(f"{seed}\n{text}".encode()).hexdigest()[:20] + ".png"


def generate_candidate_images(
    model: PairGenerator, requests: Sequence[tuple[str, int]], settings: PairSettings
) -> list[Image.Image]:
    """One image per distinct (text, seed), from the frozen generator (all adapters off), in request order."""
    images: list[Image.Image] = []
    with model.no_adapter(), tqdm(total=len(requests), desc="pair images", unit="img") as bar:
        for start in range(0, len(requests), settings.batch_size):
            chunk = requests[start : start + settings.batch_size]
            out = model.generate_images(
                [text for text, _ in chunk],
                seeds=[seed for _, seed in chunk],
                guidance_scale=settings.guidance_scale,
                do_sample=settings.temperature > 0,
                temperature=settings.temperature if settings.temperature > 0 else 1.0,
            )
            images += list(out.images)
            bar.update(len(chunk))
    return images


def assign_orders(kept: Sequence[Candidate], seed: int) -> tuple[list[tuple[Candidate, bool]], list[Candidate]]:
    """Alternate good-first / good-second over the kept candidates of one stage, sorted by kind and shuffled (seeded)
    within a kind; returns (candidate, good_first) pairs and the odd one out dropped to balance Yes and No exactly."""
    kinds = list(dict.fromkeys([PERTURBED, *FAILURE_KINDS]))
    rng = random.Random(f"seer-pairs-order/{seed}")
    keyed = [(kinds.index(c.bad_kind), rng.random(), c) for c in kept]
    ordered = [c for _, _, c in sorted(keyed, key=lambda k: (k[0], k[1]))]
    dropped = ordered[-1:] if len(ordered) % 2 else []
    ordered = ordered[: len(ordered) - len(dropped)]
    return [(c, i % 2 == 0) for i, c in enumerate(ordered)], dropped


def _make_pair(candidate: Candidate, good_first: bool) -> Pair:
    item = candidate.item
    return Pair(
        id=f"{item.id}:{candidate.stage}:{candidate.bad_kind}",
        stage=candidate.stage,
        item_id=item.id,
        category=item.category,
        difficulty=item.difficulty,
        split=item.split,
        prompt=item.prompt,
        instruction=item.instruction,
        good_text=candidate.good_text,
        bad_text=candidate.bad_text,
        bad_kind=candidate.bad_kind,
        seed=candidate.seed,
        good_image=f"{IMAGE_DIR}/{image_name(candidate.good_text, candidate.seed)}",
        bad_image=f"{IMAGE_DIR}/{image_name(candidate.bad_text, candidate.seed)}",
        good_first=good_first,
    )


def build_pairs(model: PairGenerator, items: Sequence[VIEItem], out_dir: str | os.PathLike, settings: PairSettings,
                *, where: str = "items") -> PairSet:  # fmt: skip
    """Generate, verify and order the pairs of `items` and write them to `out_dir` (renamed into place); a complete
    set that another run wrote there meanwhile is kept and returned instead."""
    check_pair_items(items, where)
    out_dir = Path(out_dir)
    found = candidates(items, settings)
    requests = list(dict.fromkeys((t, c.seed) for c in found for t in (c.good_text, c.bad_text)))
    images = dict(zip(requests, generate_candidate_images(model, requests, settings), strict=True))

    summary: dict[str, Any] = {}
    pairs: list[Pair] = []
    for stage in settings.stages:
        staged = [c for c in found if c.stage == stage]
        reasons: Counter[str] = Counter()
        kept = []
        for c in staged:
            reason = drop_reason(c, images[(c.good_text, c.seed)], images[(c.bad_text, c.seed)])
            if reason is None:
                kept.append(c)
            else:
                reasons[reason] += 1
        ordered, unbalanced = assign_orders(kept, settings.seed)
        reasons["balance"] += len(unbalanced)
        pairs += [_make_pair(c, good_first) for c, good_first in ordered]
        kinds = list(dict.fromkeys(c.bad_kind for c in staged))
        summary[f"stage{stage}"] = {
            "question": STAGE_NAMES[stage],
            "candidates": len(staged),
            "kept": len(ordered),
            "dropped": {reason: reasons[reason] for reason in ("good_failed", "bad_passed", "balance")},
            "yes": sum(good_first for _, good_first in ordered),
            "by_kind": {
                kind: {
                    "candidates": sum(c.bad_kind == kind for c in staged),
                    "kept": sum(c.bad_kind == kind for c, _ in ordered),
                }
                for kind in kinds
            },
        }
    if not _write_pair_set(out_dir, pairs, summary, {request: images[request] for request in requests}):
        return load_pairs(out_dir)
    return PairSet(out_dir, pairs, summary)


def _write_pair_set(
    out_dir: Path, pairs: list[Pair], summary: dict[str, Any], images: dict[tuple[str, int], Image.Image]
) -> bool:
    """Write images, pairs.jsonl and summary.json into a staging directory, then rename it into place; False (and
    nothing written) when a complete set is already there."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / IMAGE_DIR).mkdir(parents=True)
    try:
        for (text, seed), image in images.items():
            image.convert("RGB").save(staging / IMAGE_DIR / image_name(text, seed), format="PNG")
        lines = "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pairs)
        (staging / PAIRS_FILE).write_text(lines, encoding="utf-8")
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        # Runs that share a pair cache may build the same set at once (same key, so the same pairs): the first
        # complete one stays, as the others may already be reading its images. An incomplete one is replaced.
        if (out_dir / SUMMARY_FILE).is_file():
            return False
        if out_dir.exists():
            shutil.rmtree(out_dir)
        try:
            os.replace(staging, out_dir)
        except OSError:  # a directory is not renamed onto a non-empty one: another run's set landed just now
            if (out_dir / SUMMARY_FILE).is_file():
                return False
            raise
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_pairs(directory: str | os.PathLike) -> PairSet:
    """A pair set written by `build_pairs`; SeerError (one line) when a file is missing or a line is malformed."""
    directory = Path(directory)
    for name in (PAIRS_FILE, SUMMARY_FILE):
        if not (directory / name).is_file():
            raise SeerError(f"{directory / name}: file not found (expected a pair set written by build_pairs)")
    names = {f.name for f in Pair.__dataclass_fields__.values()}
    pairs = []
    for lineno, line in enumerate((directory / PAIRS_FILE).read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            if set(record) != names:
                raise ValueError(f"expected the fields {sorted(names)}, got {sorted(record)}")
            pairs.append(Pair(**record))
        except (ValueError, TypeError) as error:
            raise SeerError(f"{directory / PAIRS_FILE}:{lineno}: not a pair record ({error})") from None
    # A torn or corrupted cache fails here, before any training, not at the step that first shows the image.
    for name in sorted({name for p in pairs for name in (p.good_image, p.bad_image)}):
        check_png(directory / name)
    summary = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
    return PairSet(directory, pairs, summary)


def cache_key(items: Sequence[VIEItem], settings: PairSettings) -> str:
    """A hash of everything that decides the pairs: the items, the settings and the format version."""
    blob = json.dumps(
        {"version": FORMAT_VERSION, "items": [item.to_dict() for item in items], "settings": settings.key_fields()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_or_load_pairs(
    model: PairGenerator,
    items: Sequence[VIEItem],
    cache_root: str | os.PathLike,
    name: str,
    settings: PairSettings,
    *,
    where: str = "items",
) -> PairSet:
    """The pairs of `items` from ``cache_root/<name>-<key>/`` if built before, else built there now."""
    directory = Path(cache_root) / f"{name}-{cache_key(items, settings)}"
    if (directory / SUMMARY_FILE).is_file():
        return load_pairs(directory)
    return build_pairs(model, items, directory, settings, where=where)


def summary_lines(pairs: PairSet, name: str) -> Iterator[str]:
    """Human-readable lines: per stage, candidates, kept pairs and why the others were dropped."""
    for stage in (PROMPT_STAGE, INSTRUCTION_STAGE):
        s = pairs.summary.get(f"stage{stage}")
        if not s:
            continue
        dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in s["dropped"].items() if n) or "none"
        kinds = ", ".join(f"{k} {v['kept']}/{v['candidates']}" for k, v in s["by_kind"].items())
        yield (
            f"{name} stage {stage} ({s['question']}): kept {s['kept']} of {s['candidates']} candidates "
            f"({s['yes']} Yes / {s['kept'] - s['yes']} No); dropped: {dropped}; by kind: {kinds}"
        )
