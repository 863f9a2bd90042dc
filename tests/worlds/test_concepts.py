"""The concept lexicon: coverage, phrasings, knowledge text, and scene_has_concept on hand-built scenes."""

import random
import re
import string

import pytest

from seer.worlds.shapeworld.concepts import (
    CATEGORIES,
    LEXICON,
    Colours,
    Composite,
    concepts_in,
    get_concept,
    knowledge_sentences,
    qa_pairs,
    random_literal_concept,
    recalled_concept,
    scene_has_concept,
    vocabulary,
)
from seer.worlds.shapeworld.scene import COLORS, SHAPES, Obj, Scene


def scene(background, *objects):
    return Scene(background, tuple(Obj(*o) for o in objects))


def has(name, s):
    return scene_has_concept(s, get_concept(name))


def test_lexicon_size_and_spread():
    assert len(LEXICON) >= 36
    assert len({c.name for c in LEXICON}) == len(LEXICON)
    assert {c.category for c in LEXICON} == set(CATEGORIES)
    assert {c.split for c in LEXICON} == {"id", "ood"}
    assert len(concepts_in(split="ood")) >= 12
    for category in CATEGORIES:  # every category has concepts for training and its own OOD ones
        assert len(concepts_in(category, "id")) >= 3, category
        assert len(concepts_in(category, "ood")) >= 2, category


def test_phrasings_are_many_distinct_and_split_disjoint():
    for c in LEXICON:
        assert len(c.phrasings) >= 3, c.name
        assert len(set(c.phrasings)) == len(c.phrasings), c.name
    id_phrasings = {p for c in concepts_in(split="id") for p in c.phrasings}
    ood_phrasings = {p for c in concepts_in(split="ood") for p in c.phrasings}
    assert not id_phrasings & ood_phrasings
    # OOD phrasings use sentence frames of their own: no OOD phrasing opens with a word an ID phrasing opens with.
    assert not {p.split()[0] for p in id_phrasings} & {p.split()[0] for p in ood_phrasings}


def test_only_subject_concepts_name_the_subject_and_they_always_do():
    for c in LEXICON:
        for p in c.phrasings:
            assert set(re.findall(r"\{(\w*)\}", p)) <= {"shape"}, p
            assert ("{shape}" in p) == c.rule.subject_based, (c.name, p)


def test_all_text_is_plain_lower_case():
    allowed = set(string.ascii_lowercase + " ,?{}")
    for c in LEXICON:
        texts = [c.name, c.scene_question, *c.phrasings, *knowledge_sentences(c)]
        texts += [t for qa in qa_pairs(c) for t in qa]
        for text in texts:
            assert set(text) <= allowed, (c.name, text)
            assert text == text.strip() and "  " not in text, text
    words = vocabulary()
    assert all(w.isalpha() or w in ",?" for w in words)
    assert {"icy", "traffic", "light", "circle", "means"} <= words
    assert len(words) < 400  # a small word-level vocabulary


def test_knowledge_states_the_rule():
    assert knowledge_sentences(get_concept("icy"))[0] == "icy means white, cyan and blue"
    assert knowledge_sentences(get_concept("gloomy"))[0] == "gloomy means a gray or black background"
    assert knowledge_sentences(get_concept("traffic light"))[0] == (
        "a traffic light is a red circle, a yellow circle and a green circle stacked from top to bottom"
    )
    assert ("what does icy mean?", "icy means white, cyan and blue") in qa_pairs(get_concept("icy"))
    # For every colour concept, the colour words of its definition are exactly the rule's colours.
    for c in LEXICON:
        stated = {w.strip(",") for w in c.definition.split()} & set(COLORS)
        if isinstance(c.rule, Colours):
            assert stated == set(c.rule.background) | set(c.rule.objects), c.name
        if isinstance(c.rule, Composite):
            assert stated == {p.color for p in c.rule.parts}, c.name
            assert {w for w in c.definition.split()} >= {p.shape for p in c.rule.parts}, c.name
    for c in LEXICON:
        assert len(knowledge_sentences(c)) >= 3, c.name
        assert len(qa_pairs(c)) >= 2 and all(q.endswith("?") and a for q, a in qa_pairs(c)), c.name


def test_get_concept_unknown_name():
    with pytest.raises(KeyError, match="unknown concept 'frosty'"):
        get_concept("frosty")


# (concept, scene, expected): each verdict derived by hand from the concept's definition.
CASES = [
    ("icy", scene("white", ("top", "circle", "blue", "small"), ("left", "square", "cyan", "large")), True),
    ("icy", scene("white", ("top", "circle", "red", "small")), False),
    ("icy", scene("red", ("top", "circle", "blue", "small")), False),  # the background counts too
    ("autumn", scene("brown", ("top", "circle", "orange", "small"), ("left", "bar", "red", "small")), True),
    ("sunset", scene("purple", ("top", "circle", "pink", "small")), True),
    ("sunset", scene("purple", ("top", "circle", "yellow", "small")), False),
    ("gloomy", scene("black", ("top", "circle", "red", "small")), True),
    ("gloomy", scene("white", ("top", "circle", "red", "small")), False),
    ("wintry", scene("cyan", ("top", "circle", "red", "small")), True),
    ("lush", scene("blue", ("top", "circle", "green", "small")), False),
    ("traffic light", scene("black", ("top left", "circle", "red", "small"), ("left", "circle", "yellow", "large"),
                            ("bottom left", "circle", "green", "small")), True),  # fmt: skip
    ("traffic light", scene("black", ("top left", "circle", "green", "small"), ("left", "circle", "yellow", "small"),
                            ("bottom left", "circle", "red", "small")), False),  # fmt: skip
    ("traffic light", scene("black", ("top left", "circle", "red", "small"), ("top", "circle", "yellow", "small"),
                            ("top right", "circle", "green", "small")), False),  # fmt: skip
    ("snowman", scene("blue", ("top", "circle", "white", "small"), ("center", "circle", "white", "large")), True),
    ("snowman", scene("blue", ("top", "circle", "white", "large"), ("center", "circle", "white", "small")), False),
    ("caterpillar", scene("white", ("left", "circle", "green", "small"), ("center", "circle", "green", "large"),
                          ("right", "circle", "green", "small")), True),  # fmt: skip
    ("mushroom", scene("green", ("top", "circle", "red", "large"), ("center", "square", "white", "small")), True),
    ("mushroom", scene("green", ("top", "circle", "red", "small"), ("center", "square", "white", "small")), False),
    ("double", scene("white", ("top", "circle", "red", "small"), ("bottom", "circle", "red", "large")), True),
    ("double", scene("white", ("top", "circle", "red", "small"), ("bottom", "circle", "blue", "small")), False),
    ("pair", scene("white", ("left", "ring", "red", "small"), ("center", "ring", "red", "small")), True),
    ("pair", scene("white", ("left", "ring", "red", "small"), ("right", "ring", "red", "small")), False),  # not beside
    ("pair", scene("white", ("left", "ring", "red", "small"), ("center", "ring", "red", "large")), False),
    ("pair", scene("white", ("top", "ring", "red", "small"), ("center", "ring", "red", "small")), False),  # stacked
    ("triple", scene("white", ("top", "bar", "red", "small"), ("left", "bar", "red", "small"),
                     ("right", "bar", "red", "large")), True),  # fmt: skip
    ("crowd", scene("white", ("top", "bar", "red", "small"), ("left", "bar", "red", "small"),
                    ("right", "bar", "red", "large")), False),  # fmt: skip
    ("alone", scene("white", ("top", "bar", "red", "small")), True),
    ("alone", scene("white", ("top", "bar", "red", "small"), ("left", "bar", "red", "small")), False),
    ("symmetric", scene("white", ("left", "ring", "red", "small"), ("right", "ring", "red", "small")), True),
    ("symmetric", scene("white", ("center", "ring", "red", "small")), True),
    ("symmetric", scene("white", ("left", "ring", "red", "small"), ("right", "ring", "blue", "small")), False),
    ("one side", scene("white", ("top left", "ring", "red", "small"), ("bottom left", "bar", "blue", "large")), True),
    ("one side", scene("white", ("top left", "ring", "red", "small"), ("right", "bar", "blue", "large")), False),
    ("row", scene("white", ("bottom left", "ring", "red", "small"), ("bottom", "bar", "blue", "large")), True),
    ("row", scene("white", ("bottom left", "ring", "red", "small")), False),  # one object is not a row
    ("spotlight", scene("white", ("center", "cross", "red", "large")), True),
    ("spotlight", scene("white", ("center", "cross", "red", "small")), False),
    ("spotlight", scene("white", ("center", "cross", "red", "large"), ("top", "bar", "red", "small")), False),
    ("diagonal", scene("white", ("top left", "cross", "red", "large"), ("bottom right", "bar", "red", "small")), True),
    ("diagonal", scene("white", ("top left", "cross", "red", "large"), ("bottom left", "bar", "red", "small")), False),
    ("corners", scene("white", ("top right", "cross", "red", "large"), ("bottom left", "bar", "red", "small")), True),
    ("corners", scene("white", ("top right", "cross", "red", "large"), ("top", "bar", "red", "small")), False),
    ("tower", scene("white", ("top right", "cross", "red", "large"), ("right", "bar", "red", "small")), True),
    ("tower", scene("white", ("top right", "cross", "red", "large"), ("top", "bar", "red", "small")), False),
    ("icy but warm", scene("white", ("top", "circle", "blue", "small"), ("left", "square", "red", "large")), True),
    ("icy but warm", scene("white", ("top", "circle", "red", "small"), ("left", "square", "red", "large")), False),
    ("icy but warm", scene("white", ("top", "circle", "blue", "small")), False),  # nothing warm
    ("gloomy but colourful", scene("black", ("top", "circle", "pink", "small")), True),
    ("gloomy but colourful", scene("black", ("top", "circle", "blue", "small")), False),
    ("fiery night", scene("blue", ("top", "circle", "orange", "small")), True),
    ("fiery night", scene("white", ("top", "circle", "orange", "small")), False),
    ("frozen fire", scene("cyan", ("top", "circle", "red", "small"), ("left", "bar", "yellow", "small")), True),
    ("frozen fire", scene("cyan", ("top", "circle", "red", "small"), ("left", "bar", "blue", "small")), False),
    ("symmetric side", scene("white", ("top left", "bar", "red", "small"), ("top right", "bar", "red", "small")),
     True),
    ("symmetric side", scene("white", ("left", "bar", "red", "small"), ("right", "bar", "red", "small")), False),
    ("symmetric side", scene("white", ("top left", "bar", "red", "small"), ("top", "bar", "red", "small")), False),
    ("tiny crowd", scene("white", *[(p, "ring", "red", "small") for p in ("top", "left", "right", "bottom")]), True),
    ("tiny crowd", scene("white", ("top", "ring", "red", "large"),
                         *[(p, "ring", "red", "small") for p in ("left", "right", "bottom")]), False),  # fmt: skip
    ("lonely giant", scene("white", ("bottom right", "ring", "red", "large")), True),
    ("lonely giant", scene("white", ("center", "ring", "red", "large")), False),
]


@pytest.mark.parametrize("name, s, expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_scene_has_concept(name, s, expected):
    assert has(name, s) is expected


def test_every_concept_has_a_hand_checked_scene_and_shapes_are_known():
    assert {c.name for c in LEXICON} - {name for name, _, _ in CASES} <= {
        "forest", "ocean", "fire", "candy", "desert", "ghostly", "minty", "cheerful", "night", "cozy", "dreamy",
        "tree", "house", "candle",
    }  # fmt: skip  (these share a rule type with checked ones; they differ only in data)
    for c in LEXICON:
        if isinstance(c.rule, Composite):
            assert all(p.shape in SHAPES and p.color in COLORS for p in c.rule.parts)


def test_recalled_concept_reads_decoded_text_and_prefers_the_longer_definition():
    decoded = "the first image shows a small blue circle on a red background . icy means white , cyan and blue"
    assert recalled_concept(decoded).name == "icy"
    # "night means a black or blue background" is inside the fiery night's definition: the longer one is meant.
    fiery = "a fiery night means a black or blue background with red , orange or yellow shapes"
    assert recalled_concept(fiery).name == "fiery night"
    assert recalled_concept("night means a black or blue background").name == "night"
    assert recalled_concept("the prompt has two shapes on a red background") is None


def test_random_literal_concepts_use_ood_layouts_and_counts_only_when_asked():
    """By default no draw is an `ood` concept's rule (its meaning is met only in its definition); with `ood_rules`
    every `ood` layout and count is drawn (as a nameless constraint), and every `id` one still is."""
    def structural(split):
        return {c.rule for c in LEXICON if c.split == split and not isinstance(c.rule, (Colours, Composite))}

    ood_colours = {(frozenset(c.rule.background), frozenset(c.rule.objects))
                   for c in LEXICON if c.split == "ood" and isinstance(c.rule, Colours)}  # fmt: skip
    for ood_rules in (False, True):
        rng = random.Random(0)
        drawn = [random_literal_concept(rng, ood_rules) for _ in range(4000)]
        rules = {c.rule for c in drawn if not isinstance(c.rule, (Colours, Composite))}
        assert structural("id") <= rules
        assert (structural("ood") <= rules) if ood_rules else not (structural("ood") & rules)
        if not ood_rules:
            colours = {(frozenset(c.rule.background), frozenset(c.rule.objects))
                       for c in drawn if isinstance(c.rule, Colours)}  # fmt: skip
            assert not colours & ood_colours


@pytest.mark.parametrize("weight", [1, 3])
def test_structural_weight_sets_the_share_of_layouts_and_counts(weight):
    """Five kinds are drawn alike, the layouts and counts `weight` times as often: 1 in 5 at weight 1, 3 in 7 at 3
    (with `ood_rules` no draw is rejected, so the shares are exact in expectation)."""
    rng = random.Random(1)
    drawn = [random_literal_concept(rng, ood_rules=True, structural_weight=weight) for _ in range(6000)]
    share = sum(not isinstance(c.rule, (Colours, Composite)) for c in drawn) / len(drawn)
    assert share == pytest.approx(weight / (4 + weight), abs=0.02)
