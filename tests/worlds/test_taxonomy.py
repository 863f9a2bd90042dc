"""The reprompt failure taxonomy: a table of hand-written reprompts with their hand-derived class."""

from types import SimpleNamespace

import pytest

from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import describe, parse
from seer.worlds.shapeworld.items import build_spec
from seer.worlds.shapeworld.taxonomy import classify_reprompt, instruction_words, literal_vocabulary


def make_item(prompt, instruction, names, subject_shape=None):
    scene = parse(prompt)
    subject = next((o for o in scene.objects if o.shape == subject_shape), None)
    spec = build_spec(scene, subject, [get_concept(n) for n in names])
    return {"id": "t", "prompt": describe(scene), "instruction": instruction, "spec": spec, "concepts": list(names)}


ICY = make_item("a large red circle at the top left and a small blue square at the center on a white background",
                "make it icy", ["icy"])  # fmt: skip
ICY_ROW = make_item("a large red circle at the top left and a small blue square at the center on a white background",
                    "make it icy and line everything up in a row", ["icy", "row"])  # fmt: skip
DOUBLE = make_item("a large red circle at the top left on a white background", "double the circle", ["double"],
                   "circle")

TABLE = [
    # success: satisfies the spec and keeps the prompt (any order and case the grammar reads)
    (ICY, "a large cyan circle at the top left and a small blue square at the center on a white background",
     "success"),
    (ICY, "A small blue square at the center and a large cyan circle at the top left on a white background",
     "success"),
    # omission: the prompt's own scene, literally or reordered
    (ICY, "a large red circle at the top left and a small blue square at the center on a white background",
     "omission"),
    (ICY, "a small blue square at the center and a large red circle at the top left on a white background",
     "omission"),
    # hallucination: touched what icy changes without satisfying it ...
    (ICY, "a large red circle at the top left and a small blue square at the center on a cyan background",
     "hallucination"),
    (ICY, "a large green circle at the top left and a small blue square at the center on a white background",
     "hallucination"),
    # ... or broke the keep: a size changed, a cell changed, an object added
    (ICY, "a small cyan circle at the top left and a small blue square at the center on a white background",
     "hallucination"),
    (ICY, "a large cyan circle at the top and a small blue square at the center on a white background",
     "hallucination"),
    (ICY, "a large cyan circle at the top left, a small blue square at the center and a small blue ring at the bottom "
          "on a white background", "hallucination"),
    # laziness: instruction words pasted on, before, after or inside a literal prompt
    (ICY, "a large red circle at the top left and a small blue square at the center on a white background, icy",
     "laziness"),
    (ICY, "make it icy a large red circle at the top left and a small blue square at the center on a white background",
     "laziness"),
    (ICY, "a large icy red circle at the top left and a small blue square at the center on a white background.",
     "laziness"),
    # malformed: nothing the grammar can read, or extra words that are not the instruction's
    (ICY, "icy", "malformed"),
    (ICY, "", "malformed"),
    (ICY, "a large cyan circle at the top left and a small blue square at the center", "malformed"),
    (ICY, "a large cyan circle at the top left and a small blue square at the center on a white background please",
     "malformed"),
    (ICY, "make it icy", "malformed"),
    # a hard item: doing one of the two and ignoring the other is an omission; doing it wrong is a hallucination
    (ICY_ROW, "a large cyan circle at the left and a small blue square at the center on a white background",
     "success"),
    (ICY_ROW, "a large red circle at the left and a small blue square at the center on a white background",
     "omission"),
    (ICY_ROW, "a large cyan circle at the top left and a small blue square at the center on a white background",
     "omission"),
    (ICY_ROW, "a large green circle at the left and a small blue square at the center on a white background",
     "hallucination"),
    (ICY_ROW, "a large red circle at the top left and a small blue square at the bottom right on a white background",
     "hallucination"),  # moved, but not into a row
    # a subject concept
    (DOUBLE, "a large red circle at the top left and a large red circle at the top on a white background", "success"),
    (DOUBLE, "a large red circle at the top left and a small red circle at the top on a white background", "success"),
    (DOUBLE, "a large red circle at the top left on a white background", "omission"),
    (DOUBLE, "a large red circle at the top left and a large blue circle at the top on a white background",
     "hallucination"),
    (DOUBLE, "a large red circle at the top left and a large red circle at the top on a black background",
     "hallucination"),
    (DOUBLE, "a large red circle at the top left on a white background, double the circle", "laziness"),
    (DOUBLE, "double the circle: a large red circle at the top left on a white background", "laziness"),
]


@pytest.mark.parametrize("item, text, expected", TABLE, ids=[f"{i}-{row[2]}" for i, row in enumerate(TABLE)])
def test_classify_reprompt(item, text, expected):
    assert classify_reprompt(text, item) == expected


def test_item_may_be_any_object_with_the_fields():
    item = SimpleNamespace(**DOUBLE)
    assert classify_reprompt(DOUBLE["prompt"], item) == "omission"
    assert classify_reprompt(DOUBLE["prompt"] + ", double it", item) == "laziness"


def test_instruction_words_are_the_ones_the_grammar_never_writes():
    assert instruction_words(DOUBLE) == {"double"}  # "the" and "circle" are literal words
    assert instruction_words(ICY_ROW) == {"make", "it", "icy", "line", "everything", "up", "in", "row"}
    assert {"a", "at", "the", "on", "background", "and", ",", "top", "left", "center", "bar", "gray"} <= (
        literal_vocabulary()
    )
    assert not {"icy", "double", "in", "it"} & literal_vocabulary()
