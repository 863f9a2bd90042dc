"""The evaluator's checklist for an instruction question about one image, as the oracle would write it, and where an
answer's checklist first departs from it.

The embedded model answers "does the first image match the instruction better than the second image ?" with the
checklist pre-training taught it (docs/embedded-model.md): it describes the first image, recalls each concept it
finds in the instruction and checks it part by part, then checks what the concepts keep of the prompt; the verdict is
Yes when every mark is:

    <think> the first image shows a large blue circle at the center on a white background . icy means white , cyan
    and blue . the background white Yes , the blue circle Yes . keep : a large circle at the center : a large circle
    Yes , one shape Yes </think> <answer> Yes </answer>

Written from the oracle's reading of the image and the item's spec, the same checklist is the oracle's verdict.
`first_error` names the first step where an answer's checklist differs (parts compared as sets, so their order does
not count); `checklist_score` is the share of the steps an answer gets right before that, a graded verifiable reward
(`seer.rl.rewards.checklist_reward`). `benchmarks/judge_errors.py` counts the steps over a run's pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from seer.data.vie import VIEItem
from seer.formats import format_answer
from seer.worlds.shapeworld.concept_checks import concept_marks, marks_text
from seer.worlds.shapeworld.concepts import get_concept, recalled_concept
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.keep_checks import record_mark
from seer.worlds.shapeworld.scene import Scene

# The checklist's steps in the order an answer writes them, then "right" (all of it) and "unreadable" (no image reading).
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

    @property
    def verdict(self) -> str:
        """The oracle's answer, "Yes" or "No"."""
        return "Yes" if self.passed else "No"

    def answer(self) -> str:
        """The whole answer the oracle would write (decoded spacing): the checklist, then the verdict."""
        think = f"{OPENING}{self.caption} . {self.concepts}"
        think += f" . keep : {self.keep}" if self.keep else ""
        return format_answer(think, self.verdict)


def think_of(answer: str) -> str:
    """The think block of an answer, decoded spacing, without its tags."""
    return spaced(answer.split("</think>")[0].replace("<think>", " "))


def recalled_names(answer: str) -> tuple[str, ...]:
    """The concepts whose definitions the think of `answer` states, one per sentence, in the order it first states
    them (the evaluator's and the reprompter's thinks alike)."""
    found = (recalled_concept(sentence) for sentence in think_of(answer).split(" . "))
    return tuple(dict.fromkeys(concept.name for concept in found if concept is not None))


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


def writes_keep_check(answer: str) -> bool:
    """Whether the think of `answer` has a keep check (a keep-list error without one is an error of its own kind)."""
    return " . keep : " in think_of(answer)


def checklist_score(answer: str, expected: Checklist | None) -> float:
    """The share of the five checklist steps `answer` gets right before its first error (1.0: all of it; 0.0 when the
    oracle cannot read the image, so there is nothing to compare with)."""
    step = first_error(answer, expected)
    return 0.0 if step == "unreadable" else STEPS.index(step) / STEPS.index("right")
