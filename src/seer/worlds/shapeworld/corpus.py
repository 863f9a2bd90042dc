"""The pre-training corpus of the embedded UMM: what the model may know before SEER starts.

WORLD.md fixes the rule: generation is trained on literal prompts only, concepts are learned only through
understanding, and nothing here is a comparison, an instruction or a reprompt (those are SEER's to teach).
The tasks, each a generator of `Example`s:

- ``t2i``: literal prompt -> image (objects sometimes listed out of cell order: reprompts may do that).
- ``caption``: image -> its literal prompt.
- ``vqa``: single-image yes/no questions ("is there a red circle?", "does the image show <prompt>?", "does the
  image match the prompt ? prompt : <prompt>"), answered in the SEER format ``<think> the image shows ... .
  asked : a red circle No </think> <answer> No </answer>``: the instruction-tuned habits (a format, reasoning
  before answering) a paper-scale base model already has. The think block ends with a checklist of what was
  asked, one part at a time (each object anchored on its cell: "<asked object> : <what that cell holds>", the
  background, the number of shapes), each marked Yes/No; the verdict is Yes when every mark is. Each mark is one
  lookup the tiny model learns; a single verdict over the whole comparison it did not (run 4 answered "is the
  background red ?" at chance while describing the background right; restating the question without marks
  reached 0.85 on yes/no questions, run 6; marks without the cell anchor 0.92, run 7).
- ``knowledge``: text questions about concepts, answered with the definition in the think block
  ("<think> icy means white , cyan and blue </think> ..."), so a policy can reuse it in its own reasoning.
- ``concept_vqa``: "does this scene look icy?" answered by recalling the fact, then using it on the image: for
  colour, layout and symmetry concepts part by part, each part marked Yes/No, the verdict their AND
  (`concept_checks`).
- ``two_images``: two images in one context, a question about the first or the second ("describe the second
  image .", "does the first image show <prompt> ?", "does the first image look icy ?"): addressing an image by
  its place, which the evaluator's pairwise questions build on. Some name the other image after the asked one
  ("does the first image match the prompt beside the second image ? prompt : <prompt>"), as SEER's questions do.
  Each question is about one image; none compares them.
- ``rewrite``: "rewrite the prompt : <literal>" -> the prompt copied in its own order in the answer format; some
  rewrites change one attribute at random, which keeps sampling entropy for RL to explore. Their think only counts the
  shapes: a think that recalls a concept is always followed by an edit that uses it. Half the rewrites carry a
  *literal* constraint ("rewrite the prompt : <literal> . use : white, pink and green"), restated in the think block
  and applied by the world's gold editor: the instruction-following habit of an instruction-tuned base model, with
  constraints the generator already understands (random colour sets and built objects, the layouts and counts of `id`
  concepts; an `ood` concept's only with `LITERAL_OOD_RULES`, and then never by name). Which literal constraint a
  *concept* asks for is what the model only knows through understanding, and what RLMT teaches it to use
  (`concepts.random_literal_concept`). When the literal constraint is an `id` concept's meaning, the think names the
  concept ("icy means white, cyan and blue"), as a reprompter's recall would, before the edit. Some carry two
  constraints of different kinds (" . use : C1 . use : C2"), as a hard item asks two things: the think recalls or
  restates both, and the edit meets both. Some documents define a made-up name first ("what does version seven mean?"
  -> "version seven means white, pink and green") and then ask for it by name ("... . use : version seven"): the think
  restates the meaning, then the edit follows it (or the definition before it). In corpus run21, some end with a
  rewrite asking for a name nothing defines, after a think the model is given (read, not trained on): the edit must
  follow the think. In corpus run23, *pseudo-concepts* ("version two five one") have one meaning in the whole corpus,
  taught by knowledge questions; rewrites ask for most of them by name, and the think recalls the meaning from memory,
  as a reprompter must recall a concept (the rest are held out, known from knowledge questions only). In corpus run27,
  some concept questions (one image, two images, knowledge) and pseudo-concept rewrites name the concept among random
  words ("does the first image match this ? red the icy makes"), so that recall finds a name wherever it stands, as it
  must in an instruction; the random words are no instruction. In corpus run28, some two-image and knowledge questions
  name two concepts among noise, as a hard item asks two things: the answer recalls (and checks) both. In corpus run29,
  some concept questions quote a prompt and ask whether the image matches the concept as an edit of it ("does the first
  image match this ? icy . prompt : <prompt>"): after the concept's check, the think checks what the concept keeps of
  the prompt (`keep_checks`), and the verdict needs both. A concept named among noise before a quoted prompt always
  asks that. In corpus run29b, half of them name two concepts a hard item could ask together, and check both and what
  both keep. In corpus run30 (run 30, not shipped), the concepts checked as a whole (objects built from shapes, counts,
  "alone") get marks too (`concept_marks`'s `wholes`). In corpus run31, some pseudo-concept rewrites ask for two
  pseudo-concepts in one request, among noise ("... . use : red version two five one for the ring the version nine one
  four"): the think recalls both meanings, the edit shows both. Corpus run32 (not yet trained) is run28 with two names
  in half the two-image and knowledge concept questions.

Which of these a corpus holds, and how often, is its version (`CORPUS_VERSIONS`, `seer pretrain --corpus`).

Text-only examples are packed into documents of 1-3 turns, so each fact is also seen after unrelated
context (a pilot found facts learned in a single QA frame could not be recalled in the RL prompt).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field

from seer.formats import ANSWER_OPEN, FORMAT_WORDS, THINK_CLOSE, format_answer
from seer.worlds.shapeworld.concept_checks import NUMBER_WORDS, concept_marks, held_text, marks_text
from seer.worlds.shapeworld.concepts import (
    LEXICON,
    Concept,
    concepts_in,
    constraint_text,
    qa_pairs,
    random_literal_concept,
    scene_has_concept,
    vocabulary,
)
from seer.worlds.shapeworld.grammar import describe, describe_object
from seer.worlds.shapeworld.items import build_spec, compatible, elaborate, nameable_subjects, perturb_scene
from seer.worlds.shapeworld.keep_checks import keep_marks
from seer.worlds.shapeworld.scene import COLORS, POSITIONS, SHAPES, SIZES, Obj, Scene, cell_of, random_scene
from seer.worlds.shapeworld.spec import check, violation

# Task mixture of one pre-training step (fractions of examples). t2i dominates: it is the hardest to learn.
TASK_WEIGHTS: dict[str, float] = {
    "t2i": 0.36,
    "caption": 0.04,
    "vqa": 0.15,
    "two_images": 0.15,
    "knowledge": 0.08,
    "concept_vqa": 0.10,
    "rewrite": 0.12,
}
IMAGE_TASKS = ("caption", "vqa", "concept_vqa", "two_images")  # tasks with images in the user's turn
TEXT_TASKS = ("knowledge", "rewrite")  # packed into multi-turn documents
CAPTION_QUESTIONS = ("describe the image .", "what does this image show ?", "write the prompt of this image .")
REWRITE_QUESTION = "rewrite the prompt : {prompt}"
MAX_DOC_TURNS = 3
# "Does the image show / match <prompt>?": the single-image alignment question an instruction-tuned base model
# answers. The second wording quotes the prompt after "prompt :", as SEER's questions do; neither compares images.
PROMPT_QUESTIONS = ("does the {image} show {prompt} ?", "does the {image} match the prompt ? prompt : {prompt}")
# A question about one of two images that names the other one after it: still about the image named first. SEER's
# questions name both images, the asked one first; a model that never saw both named picks one by chance (run 13
# checked the second image under the paper's stage-1 question, 0.18 zero-shot; run 11 the first, 0.93).
BESIDE_QUESTION = "does the {image} match the prompt beside the {other} ? prompt : {prompt}"
BESIDE_RATE = 0.5  # two-image concept questions that name the other image too
PROMPT_CONTEXT_RATE = 0.5  # concept questions about one of two images that quote the image's prompt
REWRITE_EDIT_RATE = 0.2  # rewrites that change one attribute (sampling entropy for RL)
CONSTRAINED_REWRITE_RATE = 0.5  # rewrites under a literal constraint
CONSTRAINT_SUFFIX = " . use : {constraint}"
# Literal constraints that are an `id` concept's meaning, answered by naming the concept in the think ("use : white,
# cyan and blue" -> "<think> icy means white, cyan and blue </think>"): the think a reprompter writes when it recalls
# a concept, followed by the edit. The constraint is literal in the question; never an `ood` concept.
NAMED_CONSTRAINT_RATE = 0.5
ID_CONCEPTS = tuple(concepts_in(split="id"))
# Constrained rewrites with a second constraint of another category (never a compound, as in a hard VIE item):
# the hard items' two edits, which single-constraint rewrites never show.
TWO_CONSTRAINT_RATE = 0.4
# Rewrites that ask for a made-up name defined earlier in the document ("version seven"), see `_alias_turns`.
ALIAS_REWRITE_RATE = 0.3
ALIAS_QUESTION = "what does {name} mean?"
ALIAS_DEFINITION = re.compile(r"what does (version \w+) mean\?")  # the names a document defines
VERSION_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # made-up names
ALIAS_NAMES = tuple(f"version {n}" for n in VERSION_NUMBERS)
# Made-up concepts with one meaning across the whole corpus ("version two five one means white, pink and green"),
# known the way SEER's concepts are, from knowledge questions, and asked for by name in rewrites whose think recalls
# the meaning from memory: the document holds no definition. Run 21's reprompter, under SEER's instruction, recalled
# the asked concept in its think in only 11-19% of samples; no rewrite had ever recalled a meaning that was not in the
# document. Half of them are never asked for in a rewrite, as SEER's concepts never are: whether their recall carries
# from knowledge questions to the rewrite frame is the probe of SEER's case (`benchmarks/pseudo_recall.py`). Their
# meanings are random colour sets and built objects (never a layout or count, which would make the name a synonym of
# an `id` concept), each a different one. Run 23 (`benchmarks/RESULTS.md`): 2,000 steps of continued pre-training
# recalled the asked names in 87-99% of rewrites and the held-out ones in 1-3%, with 12 names as with 240.
PSEUDO_COUNT = 240
PSEUDO_HELD_OUT = 120  # the last ones
PSEUDO_QUESTIONS = (ALIAS_QUESTION, "what is {name}?", "how does {name} look?")
# The settings that differ between corpus versions (`CORPUS_VERSIONS`, set by `use_corpus`):
# Literal constraints may be the layouts and counts of `ood` concepts too (`random_literal_concept`).
LITERAL_OOD_RULES = False
# How much more often than each colour kind a literal constraint is a layout or count (`random_literal_concept`'s
# `structural_weight`).
LITERAL_STRUCTURAL_WEIGHT = 1
# Rewrite documents whose last turn asks for a made-up name that nothing defines, answered after a think the model is
# shown but not trained on (`_given_think_turn`).
GIVEN_THINK_RATE = 0.0
# The share of knowledge units, and of rewrite units, that are about a pseudo-concept (`PSEUDO_NAMES`).
PSEUDO_CONCEPT_RATE = 0.0
# The share of concept questions (both image tasks and knowledge) and of pseudo-concept rewrites whose name stands among
# random words (`name_among_noise`). SEER's instructions name a concept inside words pre-training never uses it with
# ("give the scene an icy look"); with the name only ever in a few fixed frames, run 25's judge recalled the
# wrong concept in about half of its errors (icy -> ocean, "make it night" -> fiery night; RESULTS, run 27).
NOISY_NAME_RATE = 0.0
NOISE_WORDS_MAX = 4  # random words on each side of the name, at most
# The share of two-image concept questions and of concept knowledge questions that name two concepts among noise
# ("does the first image match this ? red icy the double makes"), answered by recalling and checking both, the verdict
# their AND. A hard item asks two things; run 27's judge checked only one of them in 5 of its 16 greedy errors
# (RESULTS, run 28). Drawn before the one-name questions, so that corpora without it keep their examples.
TWO_NAMES_RATE = 0.0
# The share of concept questions (one image and two) that quote a prompt and ask whether the image matches the concept
# as an edit of it ("does the first image match this ? icy . prompt : P"): after the concept's marks the think checks
# what the concept leaves of the prompt (`keep_checks`: "keep : a small cross at the left : a small square No"), and
# the verdict needs both. Half of the evaluator's hallucination pairs fail only that keep, and run 27's judge never
# checks it (RESULTS, run 28). Drawn only when not 0, so that corpora without it keep their examples.
KEEP_CHECK_RATE = 0.0
# The share of keep questions that name two concepts a hard item could ask together, among noise, and check what both
# keep: half the evaluator's items are hard, and a keep check that knows one of their two concepts fails their gold
# images (run 29: hard instruction pairs 0.67-0.74, against run 27's 0.83-0.85).
KEEP_TWO_RATE = 0.0
# Whether concepts checked as a whole (objects built from shapes, counts, "alone") get marks too (`concept_marks`'s
# `wholes`): run 27's judge recalls "a pair means two identical shapes side by side in one row" and checks nothing
# (RESULTS, run 29).
MARKED_WHOLES = False
# The share of pseudo-concept rewrites that ask for two pseudo-concepts in one request (`_two_pseudo_rewrite_turn`). A
# hard item asks two things in one instruction; run 27's reprompter never recalls both, run28's descendants do in
# 4-14% of hard items and then pass 33-56% of them (`benchmarks/reprompt_recalls.py`), and pre-training's
# recall-then-edit rewrites only ever asked for one name. Run 31: it does not carry to real concepts (RESULTS, runs 30
# and 31). Drawn only when not 0, so that corpora without it keep their examples.
TWO_PSEUDO_RATE = 0.0
# Never noise: the words of SEER's questions and of the corpus's own frames ("prompt :", "use :", "asked :").
SEER_TASK_WORDS = ("instruction", "better", "than", "compare", "match", "prompt", "use", "rewrite", "asked")
# Each pre-training's corpus by name (`seer pretrain --corpus`), each version its predecessor plus what it adds. run19
# is run 19's (the module's values above); run21 adds run 20's findings: the `ood` layouts and counts as literal
# constraints, layouts and counts 3 in 7 of them, and given thinks. run23 adds pseudo-concepts to run21 (run 25).
# run27 adds names among noise to run23 (run 27: run 25 continued). run28 adds two names among noise to run27; run29
# keep checks to run27; run29b keep checks of one or two concepts to run28; run29c more of them; run30 marks for every
# concept to run29b; run31 two pseudo-concepts per request to run27; run32 is run28 with two names in half the concept
# questions instead of a fifth (not yet trained); run33 is run30 and run31 together, pre-trained from scratch: the
# shipped model (run 33; continuations on runs 28-31 had not carried to SEER's instructions).
_RUN19: dict[str, object] = {"LITERAL_OOD_RULES": False, "LITERAL_STRUCTURAL_WEIGHT": 1, "GIVEN_THINK_RATE": 0.0,
                             "PSEUDO_CONCEPT_RATE": 0.0, "NOISY_NAME_RATE": 0.0, "TWO_NAMES_RATE": 0.0,
                             "KEEP_CHECK_RATE": 0.0, "KEEP_TWO_RATE": 0.0, "MARKED_WHOLES": False,
                             "TWO_PSEUDO_RATE": 0.0}  # fmt: skip
_RUN21 = {**_RUN19, "LITERAL_OOD_RULES": True, "LITERAL_STRUCTURAL_WEIGHT": 3, "GIVEN_THINK_RATE": 0.4}
_RUN23 = {**_RUN21, "PSEUDO_CONCEPT_RATE": 0.4}
_RUN27 = {**_RUN23, "NOISY_NAME_RATE": 0.3}
_RUN28 = {**_RUN27, "TWO_NAMES_RATE": 0.2}
CORPUS_VERSIONS: dict[str, dict[str, object]] = {
    "run19": _RUN19,
    "run21": _RUN21,
    "run23": _RUN23,
    "run27": _RUN27,
    "run28": _RUN28,
    "run29": {**_RUN27, "KEEP_CHECK_RATE": 0.3},
    "run29b": {**_RUN28, "KEEP_CHECK_RATE": 0.3, "KEEP_TWO_RATE": 0.5},
    "run29c": {**_RUN28, "KEEP_CHECK_RATE": 0.5, "KEEP_TWO_RATE": 0.5},
    "run30": {**_RUN28, "KEEP_CHECK_RATE": 0.3, "KEEP_TWO_RATE": 0.5, "MARKED_WHOLES": True},
    "run31": {**_RUN27, "TWO_PSEUDO_RATE": 0.4},
    "run32": {**_RUN27, "TWO_NAMES_RATE": 0.5},
    "run33": {**_RUN28, "KEEP_CHECK_RATE": 0.3, "KEEP_TWO_RATE": 0.5, "MARKED_WHOLES": True, "TWO_PSEUDO_RATE": 0.4},
}


def use_corpus(version: str) -> None:
    """Make `sample_example` draw from corpus `version` (a key of CORPUS_VERSIONS), in this process."""
    if version not in CORPUS_VERSIONS:
        raise ValueError(f"corpus: unknown version {version!r}; expected one of {sorted(CORPUS_VERSIONS)}")
    globals().update(CORPUS_VERSIONS[version])


@dataclass(frozen=True)
class Example:
    """One pre-training document.

    Attributes:
        task: one of TASK_WEIGHTS.
        prompt: the user's text. For t2i, the literal prompt the image is generated from.
        target: the assistant's answer (empty for t2i, whose target is the image).
        scenes: the images (as scenes, rendered by the trainer): shown in the user's turn for image tasks, the
            image to generate for t2i.
        context: earlier (prompt, target) turns of the same document, also trained on (packed text documents).
        given: the start of `target` the model reads but is not trained on (a think written for it), or "".
    """

    task: str
    prompt: str
    target: str = ""
    scenes: tuple[Scene, ...] = ()
    context: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    given: str = ""


def _listing(objects: list[Obj], background: str) -> str:
    """The literal prompt listing `objects` in the given order (the grammar reads any order)."""
    parts = [describe_object(o) for o in objects]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{body} on a {background} background"


def shuffled_text(scene: Scene, rng: random.Random) -> str:
    """The scene's literal prompt with its objects in random order."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    return _listing(objs, scene.background)


def _likeness(a: Obj, b: Obj) -> tuple[int, int]:
    """(attributes shared, minus the distance between their cells): the nearer of two equally alike objects wins,
    so a built object's parts, which share nothing with the shape they replace, are listed where it was."""
    (ra, ca), (rb, cb) = cell_of(a.pos), cell_of(b.pos)
    shared = (a.pos == b.pos) + (a.shape == b.shape) + (a.size == b.size) + (a.color == b.color)
    return shared, -(abs(ra - rb) + abs(ca - cb))


def listed_like(scene: Scene, listed: list[Obj]) -> str:
    """The literal prompt of `scene` (an edit of a prompt) listing its objects in the order the prompt's text
    lists `listed`: each object goes where the prompt object it most resembles was listed (ties: the nearer, then
    the earlier one), objects resembling the same one in cell order. A rewrite then copies its prompt in order and
    edits in place. Runs 11-16 listed the output in random order, and the tiny model bound sizes and cells to the wrong
    shapes: run 16's reprompts for palette and atmosphere items moved a shape the instruction leaves alone in 20
    of 80 cases (benchmarks/RESULTS.md, run 18)."""
    def source(obj: Obj) -> int:
        return max(range(len(listed)), key=lambda k: (_likeness(obj, listed[k]), -k))

    return _listing(sorted(scene.objects, key=source), scene.background)  # stable: cell order within a source


def _scene(rng: random.Random) -> Scene:
    # 1-4 objects. Single objects are not rarer than the others: with few of them the generator learned to add
    # faint ghost objects to empty cells (a pilot run: 0.78 exact on 1-object prompts against 0.99 on 3-object).
    return random_scene(rng, n_objects=rng.choices((1, 2, 3, 4), weights=(3, 3, 3, 2))[0])


def _t2i(rng: random.Random) -> Example:
    scene = _scene(rng)
    text = shuffled_text(scene, rng) if rng.random() < 0.3 else describe(scene)
    return Example("t2i", text, scenes=(scene,))


def _caption(rng: random.Random) -> Example:
    scene = _scene(rng)
    return Example("caption", rng.choice(CAPTION_QUESTIONS), describe(scene), (scene,))


def _shows(scene: Scene) -> str:
    return f"the image shows {describe(scene)}"


def _prompt_text(scene: Scene, rng: random.Random) -> tuple[str, list[Obj]]:
    """A literal prompt of `scene` as a question quotes it (canonical, as VIE prompts are, or objects reordered),
    and its objects in the order the text lists them."""
    objects = list(scene.objects) if rng.random() < 0.5 else rng.sample(scene.objects, len(scene.objects))
    return _listing(objects, scene.background), objects


def _shape_count(n: int) -> str:
    return f"{NUMBER_WORDS[n]} shape{'s' if n > 1 else ''}"


def _checklist(checks: list[tuple[str, bool]]) -> str:
    """What was asked, one part at a time, each followed by whether the image shows it (Yes/No)."""
    return "asked : " + marks_text(checks)


def _in_cell(scene: Scene, pos: str) -> str:
    """What the scene has in cell `pos`: "a large red circle" (the object without its place) or "nothing"."""
    return held_text(next((o for o in scene.objects if o.pos == pos), None))


def _object_check(asked: Obj, scene: Scene) -> tuple[str, bool]:
    """The check of one asked object, anchored on its cell: "a large pink cross at the left : a large pink bar"
    (No). The tiny model first copies what that cell holds, then compares two short phrases side by side; marking
    the whole object against the whole description it confused objects one attribute apart (run 7 marked 20% of
    its own correct descriptions wrongly on stage-1 pairs)."""
    return f"{describe_object(asked)} : {_in_cell(scene, asked.pos)}", asked in scene.objects


def _scene_checks(asked: list[Obj], background: str, scene: Scene) -> list[tuple[str, bool]]:
    """The checks of "does the image show <prompt> ?": each object, the background and the number of shapes."""
    checks = [_object_check(o, scene) for o in asked]
    checks.append((f"a {background} background", background == scene.background))
    checks.append((_shape_count(len(asked)), len(asked) == len(scene.objects)))
    return checks


def _vqa(rng: random.Random) -> Example:
    scene = _scene(rng)
    kind = rng.choice(("object", "background", "place", "prompt"))
    obj = rng.choice(scene.objects)
    yes = rng.random() < 0.5
    if kind == "object":
        shape, color = obj.shape, obj.color
        if not yes:
            color = rng.choice([c for c in COLORS if c != color])
        found = any(o.shape == shape and o.color == color for o in scene.objects)
        question, checks = f"is there a {color} {shape} ?", [(f"a {color} {shape}", found)]
    elif kind == "background":
        color = scene.background if yes else rng.choice([c for c in COLORS if c != scene.background])
        question, checks = f"is the background {color} ?", [(f"a {color} background", color == scene.background)]
    elif kind == "place":
        pos = obj.pos if yes else rng.choice([p for p in POSITIONS if p != obj.pos])
        found = any(o.shape == obj.shape and o.pos == pos for o in scene.objects)
        asked = f"a {obj.shape} at the {pos} : {_in_cell(scene, pos)}"
        question, checks = f"is there a {obj.shape} at the {pos} ?", [(asked, found)]
    else:
        shown = scene if yes else perturb_scene(scene, rng)
        text, objects = _prompt_text(shown, rng)
        question = rng.choice(PROMPT_QUESTIONS).format(image="image", prompt=text)
        checks = _scene_checks(objects, shown.background, scene)
    think = f"{_shows(scene)} . {_checklist(checks)}"
    verdict = "Yes" if all(ok for _, ok in checks) else "No"
    return Example("vqa", question, format_answer(think, verdict), (scene,))


def _in_place(scenes: tuple[Scene, Scene], which: int, scene: Scene) -> tuple[Scene, Scene]:
    """`scenes` with image `which` (0: the first) replaced by `scene`: the image a question is about."""
    return (scene, scenes[1]) if which == 0 else (scenes[0], scene)


def _two_images(rng: random.Random) -> Example:
    scenes = (_scene(rng), _scene(rng))
    which = rng.randrange(2)
    place, scene = ("first", "second")[which], scenes[which]
    kind = rng.choices(("describe", "prompt", "concept"), weights=(0.2, 0.45, 0.35))[0]
    if kind == "describe":
        return Example("two_images", f"describe the {place} image .", describe(scene), scenes)
    if kind == "concept":
        return _concept_question(scenes, which, rng)
    # A third of the "No" questions show the other image's prompt (answering needs the right image, not either
    # one); the rest change one attribute, the hard case of the evaluator's stage-1 pairs.
    yes = rng.random() < 0.5
    shown = scene if yes else (scenes[1 - which] if rng.random() < 1 / 3 else perturb_scene(scene, rng))
    text, objects = _prompt_text(shown, rng)
    checks = _scene_checks(objects, shown.background, scene)
    think = f"the {place} image shows {describe(scene)} . {_checklist(checks)}"
    verdict = "Yes" if all(ok for _, ok in checks) else "No"
    other = ("first", "second")[1 - which]
    template = rng.choice((*PROMPT_QUESTIONS, BESIDE_QUESTION))
    question = template.format(image=f"{place} image", other=f"{other} image", prompt=text)
    return Example("two_images", question, format_answer(think, verdict), scenes)


@functools.cache
def noise_words() -> tuple[str, ...]:
    """The words `name_among_noise` draws from: the tokenizer's (`corpus_words`) but punctuation, the format's tags, the
    verdicts, SEER's question words and their forms (`SEER_TASK_WORDS`: "match", "matches") and every word of a
    concept's or pseudo-concept's name, so that the one name in the text is the one put there. Words that only
    instructions use ("give", "feel") stay: as noise they carry nothing, which is what an instruction's other words are
    to recall."""
    names = {w for c in LEXICON for w in c.name.split()} | {w for n in PSEUDO_NAMES for w in n.split()}

    def noise(word: str) -> bool:
        return word.isalpha() and word.islower() and word not in names and not any(t in word for t in SEER_TASK_WORDS)

    return tuple(filter(noise, corpus_words()))


def names_among_noise(names: list[str], rng: random.Random) -> str:
    """`names` in order, with 0 to NOISE_WORDS_MAX random words (`noise_words`) before each and after the last: "red
    the icy makes". A bag of random words is no instruction; it puts the names where a frame never has them, so recall
    must find each name itself."""
    words = noise_words()
    text: list[str] = []
    for name in names:
        text += [*rng.choices(words, k=rng.randint(0, NOISE_WORDS_MAX)), name]
    return " ".join(text + rng.choices(words, k=rng.randint(0, NOISE_WORDS_MAX)))


def name_among_noise(name: str, rng: random.Random) -> str:
    """One name among noise (`names_among_noise`)."""
    return names_among_noise([name], rng)


def _noisy(rng: random.Random) -> bool:
    """Whether a concept question or a pseudo-concept rewrite puts its name among noise. Draws nothing when
    NOISY_NAME_RATE is 0, so the corpora before it keep their examples."""
    return NOISY_NAME_RATE > 0 and rng.random() < NOISY_NAME_RATE


def _two_named(rng: random.Random) -> bool:
    """Whether a concept question names two concepts among noise; draws nothing when TWO_NAMES_RATE is 0."""
    return TWO_NAMES_RATE > 0 and rng.random() < TWO_NAMES_RATE


SINGLE_CONCEPTS = tuple(c for c in LEXICON if c.category != "compound")  # a compound is already two asks


def _together(a: Concept, b: Concept) -> bool:
    """Whether a hard item could ask both: other categories, compatible edits (`items.compatible`)."""
    return a.category != b.category and compatible(a, b)


def _concept_pair(rng: random.Random) -> list[Concept]:
    """Two concepts a hard item could ask together (`_together`)."""
    while True:
        a, b = rng.sample(SINGLE_CONCEPTS, 2)
        if _together(a, b):
            return [a, b]


def _knowledge_turn(concept: Concept, rng: random.Random) -> tuple[str, str]:
    """A knowledge QA about `concept`; or, among noise, "what does this mean ? <noise> icy <noise> [double <noise>]"
    answered with each named concept's definition in order."""
    named = _concept_pair(rng) if _two_named(rng) else [concept] if _noisy(rng) else None
    if named:
        definitions = " . ".join(c.definition for c in named)
        return f"what does this mean ? {names_among_noise([c.name for c in named], rng)}", format_answer(
            definitions, definitions)  # fmt: skip
    question, answer = rng.choice(qa_pairs(concept))
    return question, format_answer(concept.definition, answer)


def _elaborate_for(prompt: Scene, concept: Concept, rng: random.Random) -> Scene | None:
    """The world's gold elaboration of `prompt` for `concept` (on a random subject when the concept needs one), or
    None when this prompt cannot show it."""
    subject = rng.choice(prompt.objects) if concept.rule.subject_based else None
    return elaborate(prompt, subject, [concept], rng)


def _elaborated(concept: Concept, rng: random.Random) -> tuple[Scene, Scene]:
    """(prompt, scene): a random prompt and the world's gold elaboration of it, which shows `concept`."""
    while True:
        prompt = random_scene(rng, max_objects=3)
        scene = _elaborate_for(prompt, concept, rng)
        if scene is not None and scene_has_concept(scene, concept):
            return prompt, scene


def _positive_scene(concept: Concept, rng: random.Random) -> Scene:
    """A scene that shows `concept`: a random prompt elaborated by the world's own gold editor."""
    return _elaborated(concept, rng)[1]


def _drawn_for(concept: Concept, rng: random.Random) -> tuple[Scene, Scene]:
    """(prompt, scene) for a concept question that quotes the prompt the image was drawn for. Half the scenes show
    `concept` (the prompt elaborated); the others are the prompt itself or the prompt elaborated for another
    concept, so that whether the image differs from its prompt says nothing about the answer."""
    if rng.random() < 0.5:
        return _elaborated(concept, rng)
    prompt = random_scene(rng, max_objects=3)
    if rng.random() < 0.5:
        other = rng.choice([c for c in LEXICON if c.name != concept.name])
        scene = _elaborate_for(prompt, other, rng)
        if scene is not None:
            return prompt, scene
    return prompt, prompt


def _concept_scene(concept: Concept, rng: random.Random) -> Scene:
    """Half the time a scene that shows `concept`, else a random one (which rarely does)."""
    return _positive_scene(concept, rng) if rng.random() < 0.5 else _scene(rng)


def _concept_vqa(rng: random.Random) -> Example:
    concept = rng.choice(LEXICON)
    if _keep_asked(rng):
        question, answer, scene = _keep_question(_keep_one(concept, rng), None, _noisy(rng), rng)
        return Example("concept_vqa", question, answer, (scene,))
    scene = _concept_scene(concept, rng)
    answer = "Yes" if scene_has_concept(scene, concept) else "No"
    think = _checked(f"{concept.definition} . {_shows(scene)}", scene, concept)
    question = f"does the image match this ? {name_among_noise(concept.name, rng)}" if _noisy(rng) else None
    return Example("concept_vqa", question or concept.scene_question, format_answer(think, answer), (scene,))


def _checked(think: str, scene: Scene, concept: Concept) -> str:
    """`think` followed by the concept's marks on `scene` (`concept_checks`), when it has any."""
    marks = concept_marks(scene, concept, MARKED_WHOLES)
    return f"{think} . {marks_text(marks)}" if marks else think


def _concept_question(scenes: tuple[Scene, Scene], which: int, rng: random.Random) -> Example:
    """ "does the first image look icy ?" about one of two images, the frame of the evaluator's instruction
    questions (with no instruction and no comparison). The think describes the image first, then recalls the
    concept: the evaluator's thinks also start "the first image shows ...", so after that opening a concept is one
    token away ("icy means ...") instead of out of reach (run 8, which recalled first, judged instruction pairs
    with prompt checklists only and never sampled a recall).

    Some questions also quote the prompt the image was drawn for ("... look icy ? prompt : <prompt>"), and the
    answer is still the concept's. Without them, any "prompt : <prompt>" in a question meant "check the image
    against it": run 9 answered the evaluator's instruction question (which quotes the prompt) by whether the first
    image matched the prompt, the opposite of the label on omission pairs, and recalled the concept in 10% of
    answers against 45% when the prompt was left out."""
    if _two_named(rng):
        return _two_concept_question(scenes, which, rng)
    concept = rng.choice(LEXICON)
    place = ("first", "second")[which]
    if _keep_asked(rng):
        return _keep_example(_keep_one(concept, rng), scenes, which, _noisy(rng), rng)
    quoted = rng.random() < PROMPT_CONTEXT_RATE
    prompt, scene = _drawn_for(concept, rng) if quoted else (None, _concept_scene(concept, rng))
    scenes = _in_place(scenes, which, scene)
    answer = "Yes" if scene_has_concept(scene, concept) else "No"
    think = _checked(f"the {place} image shows {describe(scene)} . {concept.definition}", scene, concept)
    question = concept.scene_question.replace("?", " ?")
    if "this scene" in question:
        question = question.replace("this scene", f"the {place} image")
    else:  # "are the shapes lined up in a row ?"
        question = f"in the {place} image , {question}"
    if rng.random() < BESIDE_RATE:
        question = question.replace(" ?", f" beside the {('first', 'second')[1 - which]} image ?")
    if _noisy(rng):
        if prompt is not None and KEEP_CHECK_RATE > 0:  # where keep questions exist, they are this frame's meaning
            return _keep_example(_keep_one(concept, rng), scenes, which, noisy=True, rng=rng)
        question = f"does the {place} image match this ? {name_among_noise(concept.name, rng)}"
        if prompt is not None:  # after " . ", as in the evaluator's "instruction : I . prompt : P"
            question += " ."
    if prompt is not None:
        question = f"{question} prompt : {_prompt_text(prompt, rng)[0]}"
    return Example("two_images", question, format_answer(think, answer), scenes)


def _drawn_for_two(rng: random.Random) -> tuple[Scene, Scene, list[Concept]]:
    """(prompt, scene, two concepts) for a question naming two concepts: a third of the scenes show both (the prompt
    elaborated for both), a third one of them (elaborated for it alone), the others are the prompt itself; so that
    checking one concept of two is not enough."""
    kind = rng.randrange(3)
    if kind == 0:
        prompt, _, pair, scene = _constrained_edit(_concept_pair, rng)
        return prompt, scene, pair
    pair = _concept_pair(rng)
    if kind == 1:
        return *_elaborated(rng.choice(pair), rng), pair
    prompt = random_scene(rng, max_objects=3)
    return prompt, prompt, pair


def _two_concept_question(scenes: tuple[Scene, Scene], which: int, rng: random.Random) -> Example:
    """ "does the first image match this ? <noise> icy <noise> double <noise> [. prompt : P]" about one of two images
    (`TWO_NAMES_RATE`): the think describes the image, then recalls each concept in the order named and checks it
    (`_checked`); the verdict is Yes when the image shows both."""
    place = ("first", "second")[which]
    prompt, scene, pair = _drawn_for_two(rng)
    scenes = _in_place(scenes, which, scene)
    think = f"the {place} image shows {describe(scene)}"
    for concept in pair:
        think = _checked(f"{think} . {concept.definition}", scene, concept)
    answer = "Yes" if all(scene_has_concept(scene, c) for c in pair) else "No"
    question = f"does the {place} image match this ? {names_among_noise([c.name for c in pair], rng)}"
    if rng.random() < PROMPT_CONTEXT_RATE:
        if KEEP_CHECK_RATE > 0:  # where keep questions exist, they are this frame's meaning
            return _keep_example(None, scenes, which, noisy=True, rng=rng)
        question += f" . prompt : {_prompt_text(prompt, rng)[0]}"
    return Example("two_images", question, format_answer(think, answer), scenes)


def _keep_asked(rng: random.Random) -> bool:
    """Whether a concept question is a keep question (`KEEP_CHECK_RATE`); draws nothing when the rate is 0."""
    return KEEP_CHECK_RATE > 0 and rng.random() < KEEP_CHECK_RATE


def _drawn_for_keep(concepts_of, rng: random.Random) -> tuple[Scene, Obj | None, list[Concept], Scene]:
    """(prompt, subject, concepts, scene) for a keep question about the concepts `concepts_of(rng)` draws: a third of
    the scenes are the gold elaboration of the prompt, a third that elaboration with one attribute changed (as the
    evaluator's hallucination pairs are made: the concepts often still show, the prompt is lost), the others the prompt
    itself or its elaboration for one of two concepts (or, for one, another concept)."""
    prompt, subject, concepts, gold = _constrained_edit(concepts_of, rng)
    kind = rng.randrange(6)
    if kind < 2:
        return prompt, subject, concepts, gold
    if kind < 4:
        return prompt, subject, concepts, perturb_scene(gold, rng)
    if kind == 4:
        if len(concepts) == 2:
            scene = elaborate(prompt, subject, [rng.choice(concepts)], rng)
        else:
            scene = _elaborate_for(prompt, rng.choice([c for c in LEXICON if c.name != concepts[0].name]), rng)
        if scene is not None:
            return prompt, subject, concepts, scene
    return prompt, subject, concepts, prompt


def _marks_agree(scene: Scene, spec: dict, concepts: list[Concept]) -> bool:
    """Whether every concept's marks (where it has any) hold together exactly when its constraints of `spec` do."""
    for c in concepts:
        marks = concept_marks(scene, c, MARKED_WHOLES)
        holds = all(violation(scene, r) is None for r in spec["constraints"] if r["concept"] == c.name)
        if marks and all(ok for _, ok in marks) != holds:
            return False
    return True


def _keep_one(concept: Concept, rng: random.Random) -> Concept | None:
    """`concept`, or None for a keep question about two concepts (`KEEP_TWO_RATE`; draws nothing when it is 0)."""
    return None if KEEP_TWO_RATE > 0 and rng.random() < KEEP_TWO_RATE else concept


def _keep_question(
    concept: Concept | None, place: str | None, noisy: bool, rng: random.Random
) -> tuple[str, str, Scene]:
    """(question, answer, scene): "does the [first] image match this ? icy [for the circle] . prompt : P", the
    concept's name among noise if `noisy`; or (`concept` None) two concepts a hard item could ask together, among
    noise ("... ? <noise> icy <noise> double for the circle <noise> . prompt : P"). The think describes the image,
    recalls each concept and checks it (`_checked`), then checks what they keep of P (`keep_marks`, objects in the
    order P's text lists them); the verdict is Yes when the image is P edited for the concepts: the item spec passes.
    Scenes whose concept marks disagree with the spec (a contrast's accent on another shape than the named one) are
    drawn again, so the verdict is always the AND of the marks where the concepts have marks."""
    image = f"the {place} image" if place else "the image"
    two = concept is None
    while True:
        prompt, subject, concepts, scene = _drawn_for_keep(_concept_pair if two else lambda r: [concept], rng)
        spec = build_spec(prompt, subject, concepts)
        if _marks_agree(scene, spec, concepts):
            break
    text, listed = _prompt_text(prompt, rng)
    if two:  # each subject concept's " for the circle" right after its name
        named = names_among_noise([c.name + _for_subject(c, subject) for c in concepts], rng)
    else:
        named = (name_among_noise(concept.name, rng) if noisy else concept.name) + _for_subject(concept, subject)
    question = f"does {image} match this ? {named} . prompt : {text}"
    think = f"{image} shows {describe(scene)}"
    for c in concepts:
        think = _checked(f"{think} . {c.definition}", scene, c)
    kept = keep_marks(scene, prompt, subject, concepts, listed)
    if kept:
        think += f" . keep : {marks_text(kept)}"
    return question, format_answer(think, "Yes" if check(scene, spec).passed else "No"), scene


def _keep_example(
    concept: Concept | None, scenes: tuple[Scene, Scene], which: int, noisy: bool, rng: random.Random
) -> Example:
    """A keep question (`_keep_question`) about image `which` of two."""
    question, answer, scene = _keep_question(concept, ("first", "second")[which], noisy, rng)
    return Example("two_images", question, answer, _in_place(scenes, which, scene))


def _rewrite_turn(rng: random.Random) -> tuple[str, str]:
    """ "rewrite the prompt : P" -> P copied (sometimes with one attribute changed). The think only counts the
    shapes: runs 16-18 sometimes recalled a concept the prompt already showed, then copied, and the reprompter
    learned to copy after a recall ("... the prompt looks candy", then P unchanged)."""
    scene = _scene(rng)
    output = perturb_scene(scene, rng) if rng.random() < REWRITE_EDIT_RATE else scene
    n = len(scene.objects)
    think = f"the prompt has {NUMBER_WORDS[n]} shape{'s' if n > 1 else ''} on a {scene.background} background"
    text, listed = _prompt_text(scene, rng)
    return REWRITE_QUESTION.format(prompt=text), format_answer(think, listed_like(output, listed))


def _constraint_concept(named: bool, rng: random.Random) -> Concept:
    if named:
        return rng.choice(ID_CONCEPTS)
    return random_literal_concept(rng, LITERAL_OOD_RULES, LITERAL_STRUCTURAL_WEIGHT)


def _constraint_concepts(named: bool, two: bool, rng: random.Random) -> list[Concept]:
    """One constraint's concept, or two that a hard item could combine (another category, not a compound,
    compatible edits)."""
    first = _constraint_concept(named, rng)
    while two:
        second = _constraint_concept(named, rng)
        if second.category != "compound" and _together(first, second):
            return [first, second]
    return [first]


def _for_subject(concept: Concept, subject: Obj | None) -> str:
    """ " for the circle" after a constraint about one object (named by its shape, unique in the prompt, as VIE
    items name their subject), else ""."""
    return f" for the {subject.shape}" if concept.rule.subject_based else ""


def _constrained_edit(concepts_of, rng: random.Random) -> tuple[Scene, Obj | None, list[Concept], Scene]:
    """(prompt, subject, concepts, edited): a random prompt minimally edited by the world's gold editor to show
    every concept `concepts_of(rng)` draws (drawn again until the prompt can show them)."""
    while True:
        concepts = concepts_of(rng)
        prompt = random_scene(rng, max_objects=3)
        subject = None
        if any(c.rule.subject_based for c in concepts):
            subject = rng.choice(nameable_subjects(prompt) or [None])
            if subject is None:
                continue
        edited = elaborate(prompt, subject, concepts, rng)
        if edited is not None and all(scene_has_concept(edited, c) for c in concepts):
            return prompt, subject, concepts, edited


def _rewrite_answer(
    prompt: Scene, constraints: list[str], think: str, edited: Scene, rng: random.Random
) -> tuple[str, str]:
    """The turn "rewrite the prompt : P . use : C1 [. use : C2]" -> `think`, then `edited` listed like P's text."""
    text, listed = _prompt_text(prompt, rng)
    asked = "".join(CONSTRAINT_SUFFIX.format(constraint=c) for c in constraints)
    question = REWRITE_QUESTION.format(prompt=text) + asked
    return question, format_answer(think, listed_like(edited, listed))


def _constrained_rewrite_turn(rng: random.Random) -> tuple[str, str]:
    """ "rewrite the prompt : P . use : <literal constraint> [for the <shape>]" (sometimes a second " . use : ...")
    -> each constraint restated in the think block, or the `id` concept it means named (keeping " for the
    <shape>", so the think says which shape an edit replaces), and P minimally edited to meet them all."""
    named = rng.random() < NAMED_CONSTRAINT_RATE
    two = rng.random() < TWO_CONSTRAINT_RATE
    prompt, subject, concepts, edited = _constrained_edit(lambda r: _constraint_concepts(named, two, r), rng)
    constraints = [constraint_text(c) + _for_subject(c, subject) for c in concepts]
    think = " . ".join(c.definition + _for_subject(c, subject) for c in concepts) if named else " . ".join(constraints)
    return _rewrite_answer(prompt, constraints, think, edited, rng)


def named_definition(name: str, concept: Concept) -> str:
    """ "version seven means white, pink and green": a made-up name given a constraint's meaning."""
    return f"{name} means {constraint_text(concept)}"


def _alias_turns(rng: random.Random) -> list[tuple[str, str]]:
    """Two turns: a made-up name defined ("what does version seven mean?" -> "version seven means white, pink and
    green"), then a rewrite that asks for it by name (" . use : version seven [for the <shape>]"), answered by
    restating the meaning in the think, then the edit. The name means something else in every document, so the
    edit can only follow the think: the habit a reprompter needs after recalling a concept (run 18b's recalled the
    asked concept, then copied the prompt unchanged, in 31 of 73 samples; given the literal meaning, none did)."""
    name = rng.choice(ALIAS_NAMES)
    prompt, subject, (concept,), edited = _constrained_edit(lambda r: [_constraint_concept(named=False, rng=r)], rng)
    definition = named_definition(name, concept)
    tail = _for_subject(concept, subject)
    return [
        (ALIAS_QUESTION.format(name=name), format_answer(definition, definition)),
        _rewrite_answer(prompt, [name + tail], definition + tail, edited, rng),
    ]


def _given_think_turn(taken: set[str], rng: random.Random) -> tuple[str, str, str]:
    """(question, target, given): a rewrite that asks for one or two made-up names nothing in the document defines
    (not in `taken`: " . use : version seven [. use : version two]"), its target a think giving their meanings
    ("version seven means white, pink and green [for the <shape>]"), then the edit; `given` is that think, which the
    model reads but is not trained on (it cannot be predicted). The meaning is nowhere but in the think, so the edit
    must come from the think: what a reprompter does after recalling a concept. Given the right recall, run 19 applied
    it half as often as the same words in the question (0.233 against 0.457, run 20): with a made-up name defined
    earlier in the document the edit could still copy the definition, never only the think."""
    two = rng.random() < TWO_CONSTRAINT_RATE
    prompt, subject, concepts, edited = _constrained_edit(lambda r: _constraint_concepts(False, two, r), rng)
    names = rng.sample([n for n in ALIAS_NAMES if n not in taken], len(concepts))
    tails = [_for_subject(c, subject) for c in concepts]
    think = " . ".join(named_definition(name, c) + tail for name, c, tail in zip(names, concepts, tails))
    question, target = _rewrite_answer(prompt, [n + t for n, t in zip(names, tails)], think, edited, rng)
    return question, target, target[: target.index(THINK_CLOSE) + len(THINK_CLOSE)]


def pseudo_concepts() -> dict[str, Concept]:
    """Each pseudo-concept's meaning by name ("version two five one"), the same in every process (a fixed seed): no
    two share a meaning, and none is a real concept's."""
    rng = random.Random(23)
    taken = {constraint_text(c) for c in LEXICON}
    concepts: dict[str, Concept] = {}
    while len(concepts) < PSEUDO_COUNT:
        name = "version " + " ".join(rng.choice(VERSION_NUMBERS) for _ in range(3))
        concept = random_literal_concept(rng, structural_weight=0)
        if name not in concepts and constraint_text(concept) not in taken:
            concepts[name] = concept
            taken.add(constraint_text(concept))
    return concepts


PSEUDO_CONCEPTS = pseudo_concepts()
PSEUDO_NAMES = tuple(PSEUDO_CONCEPTS)
PSEUDO_NAME_OF = {constraint_text(c): name for name, c in PSEUDO_CONCEPTS.items()}  # meanings are unique


def _pseudo_knowledge_turn(rng: random.Random) -> tuple[str, str]:
    """ "what does version two five one mean?" -> its one meaning, as a concept's knowledge answer is written."""
    name = rng.choice(PSEUDO_NAMES)
    definition = named_definition(name, PSEUDO_CONCEPTS[name])
    return rng.choice(PSEUDO_QUESTIONS).format(name=name), format_answer(definition, definition)


def _pseudo_rewrite_turn(rng: random.Random) -> tuple[str, str]:
    """ "rewrite the prompt : P . use : version two five one [for the <shape>]" -> the think recalls its meaning (from
    memory: nothing in the document defines it), then P minimally edited to show it. Never a held-out name. A
    `TWO_PSEUDO_RATE` share ask for two (`_two_pseudo_rewrite_turn`)."""
    if TWO_PSEUDO_RATE > 0 and rng.random() < TWO_PSEUDO_RATE:
        return _two_pseudo_rewrite_turn(rng)
    name = rng.choice(PSEUDO_NAMES[:-PSEUDO_HELD_OUT])
    concept = PSEUDO_CONCEPTS[name]
    prompt, subject, _, edited = _constrained_edit(lambda r: [concept], rng)
    tail = _for_subject(concept, subject)
    asked = name_among_noise(name, rng) if _noisy(rng) else name
    return _rewrite_answer(prompt, [asked + tail], named_definition(name, concept) + tail, edited, rng)


@functools.cache
def _pseudo_pairs() -> tuple[tuple[str, str], ...]:
    """Pairs of trained pseudo-concept names a hard item could ask together (`_together`)."""
    names = PSEUDO_NAMES[:-PSEUDO_HELD_OUT]
    return tuple((a, b) for i, a in enumerate(names) for b in names[i + 1 :]
                 if _together(PSEUDO_CONCEPTS[a], PSEUDO_CONCEPTS[b]))  # fmt: skip


def _two_pseudo_rewrite_turn(rng: random.Random) -> tuple[str, str]:
    """ "rewrite the prompt : P . use : version two five one [for the <shape>] and version nine one four" (both in one
    request, among noise as often as one name is) -> the think recalls both meanings in the order asked, then P
    minimally edited to show both."""

    def pair(r: random.Random) -> list[Concept]:  # a new pair each try: some can never be drawn together
        names = list(r.choice(_pseudo_pairs()))
        r.shuffle(names)
        return [PSEUDO_CONCEPTS[name] for name in names]

    prompt, subject, concepts, edited = _constrained_edit(pair, rng)
    names = [PSEUDO_NAME_OF[constraint_text(c)] for c in concepts]
    asks = [name + _for_subject(concept, subject) for name, concept in zip(names, concepts)]
    asked = names_among_noise(asks, rng) if _noisy(rng) else " and ".join(asks)
    think = " . ".join(named_definition(n, c) + _for_subject(c, subject) for n, c in zip(names, concepts))
    return _rewrite_answer(prompt, [asked], think, edited, rng)


def _text_units(task: str, rng: random.Random) -> list[tuple[str, str]]:
    """One or two turns of a text document: a knowledge QA (of a concept or a pseudo-concept), or a rewrite (plain,
    constrained, by alias or by pseudo-concept). Corpora without pseudo-concepts draw nothing for them, so their
    examples are those of the versions before pseudo-concepts existed."""
    pseudo = PSEUDO_CONCEPT_RATE > 0 and rng.random() < PSEUDO_CONCEPT_RATE
    if task == "knowledge":
        return [_pseudo_knowledge_turn(rng) if pseudo else _knowledge_turn(rng.choice(LEXICON), rng)]
    if pseudo:
        return [_pseudo_rewrite_turn(rng)]
    if rng.random() < ALIAS_REWRITE_RATE:
        return _alias_turns(rng)
    return [_constrained_rewrite_turn(rng) if rng.random() < CONSTRAINED_REWRITE_RATE else _rewrite_turn(rng)]


def _text_document(task: str, rng: random.Random) -> Example:
    """1-3 units (an alias's two turns stay together, definition first) in random order; the last turn is the
    example's prompt and target, the others its context. A rewrite document may end with a given-think turn
    (`GIVEN_THINK_RATE`), after the others: only the last turn can have an untrained part."""
    given_think = task == "rewrite" and GIVEN_THINK_RATE > 0 and rng.random() < GIVEN_THINK_RATE
    n_units = rng.randint(1, MAX_DOC_TURNS) - bool(given_think)
    units = [_text_units(task if not i else rng.choice(TEXT_TASKS), rng) for i in range(n_units)]
    rng.shuffle(units)
    turns = [turn for unit in units for turn in unit]
    if given_think:
        defined = {m[1] for p, _ in turns if (m := ALIAS_DEFINITION.fullmatch(p))}
        prompt, target, given = _given_think_turn(defined, rng)
        return Example(task, prompt, target, context=tuple(turns), given=given)
    (prompt, target), context = turns[-1], tuple(turns[:-1])
    return Example(task, prompt, target, context=context)


def sample_example(task: str, rng: random.Random) -> Example:
    """One example of `task` (a key of TASK_WEIGHTS)."""
    if task == "t2i":
        return _t2i(rng)
    if task == "caption":
        return _caption(rng)
    if task == "vqa":
        return _vqa(rng)
    if task == "concept_vqa":
        return _concept_vqa(rng)
    if task == "two_images":
        return _two_images(rng)
    if task in TEXT_TASKS:
        return _text_document(task, rng)
    raise ValueError(f"unknown pre-training task {task!r}; expected one of {list(TASK_WEIGHTS)}")


def sample_yes_no(task: str, rng: random.Random) -> Example:
    """An example of image task `task` ("vqa", "two_images" or "concept_vqa") that is a yes/no question."""
    while True:
        example = sample_example(task, rng)
        if ANSWER_OPEN in example.target:
            return example


def sample_tasks(n: int, rng: random.Random, weights: dict[str, float] = TASK_WEIGHTS) -> list[str]:
    """`n` task names drawn from the mixture."""
    return rng.choices(list(weights), weights=list(weights.values()), k=n)


def corpus_words() -> list[str]:
    """Every word the corpus, the VIE items and SEER's own prompts can contain, sorted (the tokenizer's vocabulary).

    SEER's question and instruction wording is included so that its prompts never hit <unk>, though the
    pre-training corpus itself contains no instruction or comparison.
    """
    seer_prompts = (
        "does the first image match the prompt better than the second image ? "
        "does the first image match the instruction better than the second image ? "
        "compare how well each image matches the instruction . prompt instruction : ; "
        "the image shows has shapes shape looks on a background rewrite describe what this write of is there "
        "then after that also i would like want could let version hues here everything "
        "zero one two three four five six seven eight nine first second asked shapes shape nothing"
    )
    words = set(vocabulary()) | set(seer_prompts.split()) | set(FORMAT_WORDS)
    for text in CAPTION_QUESTIONS + (REWRITE_QUESTION.format(prompt=""),):
        words |= set(text.split())
    words |= set(COLORS) | set(SHAPES) | set(SIZES) | {w for p in POSITIONS for w in p.split()}
    words |= {"a", "an", "the", "at", "on", "and", ",", "?", ".", ":", "background", "shapes"}
    return sorted(words)
