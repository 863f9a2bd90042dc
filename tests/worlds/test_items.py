"""VIE item generation: the cognitive gap holds for every item, splits stay apart, the JSONL loads with datasets."""

import json
import random
from collections import Counter
from itertools import product

import pytest

from seer.worlds.shapeworld.concepts import CATEGORIES, get_concept
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.items import (
    CONNECTORS,
    DIFFICULTIES,
    build_spec,
    elaborate,
    failing_elaborations,
    generate_items,
    perturb_scene,
)
from seer.worlds.shapeworld.scene import SHAPES, Obj, Scene, random_scene
from seer.worlds.shapeworld.spec import check, constraint, validate_spec
from seer.worlds.shapeworld.taxonomy import classify_reprompt

N = 12  # per cell: 6 categories x 2 difficulties x 2 splits x 12 = 288 items
KEYS = {"id", "category", "difficulty", "split", "prompt", "instruction", "spec", "gold", "concepts"}


@pytest.fixture(scope="module")
def items():
    return generate_items(7, N, splits=("id", "ood"))


def test_every_cell_is_filled_and_ids_are_unique(items):
    assert len(items) == len(CATEGORIES) * len(DIFFICULTIES) * 2 * N
    cells = Counter((it["category"], it["difficulty"], it["split"]) for it in items)
    assert set(cells) == set(product(CATEGORIES, DIFFICULTIES, ("id", "ood")))
    assert set(cells.values()) == {N}
    assert len({it["id"] for it in items}) == len(items)
    assert all(set(it) == KEYS for it in items)
    assert len({(it["prompt"], it["instruction"]) for it in items}) == len(items)


def test_prompt_fails_and_gold_passes(items):
    for it in items:
        validate_spec(it["spec"])
        prompt, gold = parse(it["prompt"]), parse(it["gold"])
        at_prompt = check(prompt, it["spec"])
        assert not at_prompt.satisfied, it["id"]  # naive concatenation renders the prompt: it must fail
        assert at_prompt.kept, it["id"]  # the prompt trivially keeps itself
        assert check(gold, it["spec"]).passed, (it["id"], check(gold, it["spec"]).failures)


def test_concepts_match_difficulty_category_and_split(items):
    for it in items:
        concepts = [get_concept(name) for name in it["concepts"]]
        assert concepts[0].category == it["category"]
        assert all(c.split == it["split"] for c in concepts), it["id"]
        if it["difficulty"] == "simple":
            assert len(concepts) == 1
        else:
            assert len(concepts) == 2 and concepts[1].category not in (it["category"], "compound")
            assert not concepts[0].rule.aspects & concepts[1].rule.aspects
    in_id = {name for it in items if it["split"] == "id" for name in it["concepts"]}
    in_ood = {name for it in items if it["split"] == "ood" for name in it["concepts"]}
    assert not in_id & in_ood


def _fills(name):
    return {p.format(shape=s) for p in get_concept(name).phrasings for s in SHAPES}


def test_instruction_is_made_of_the_items_own_phrasings(items):
    for it in items:
        names = it["concepts"]
        if len(names) == 1:
            assert it["instruction"] in _fills(names[0]), it["id"]
            continue
        a, b = _fills(names[0]), _fills(names[1])
        joined = {x + conn + y for conn in CONNECTORS[it["split"]] for x, y in product(a, b)}
        joined |= {y + conn + x for conn in CONNECTORS[it["split"]] for x, y in product(a, b)}
        assert it["instruction"] in joined, it["id"]


def test_generation_is_deterministic_per_cell(items):
    assert generate_items(7, N, splits=("id", "ood")) == items
    again = generate_items(7, N, splits=("ood",), categories=("quantity",), difficulties=("hard",))
    cell = ("ood", "quantity", "hard")
    assert again == [it for it in items if (it["split"], it["category"], it["difficulty"]) == cell]
    other = generate_items(8, N, splits=("id", "ood"))
    assert [it["prompt"] for it in other] != [it["prompt"] for it in items]


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="splits: unknown 'train'"):
        generate_items(0, 1, splits=("train",))


def test_generated_jsonl_loads_with_datasets(items, tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == len(items)
    for row, it in zip(loaded, items):
        assert row == it  # one Arrow schema fits every spec: nothing was cast, dropped or filled in
    row = loaded[0]
    assert check(parse(row["gold"]), row["spec"]).passed


def sc(background, *objects):
    return Scene(background, tuple(Obj(*o) for o in objects))


def test_build_spec_palette_by_hand():
    prompt = sc("white", ("top left", "circle", "red", "large"))
    spec = build_spec(prompt, None, [get_concept("icy")])
    assert spec == {
        "constraints": [
            constraint("background", "icy", colors=["white", "cyan", "blue"]),
            constraint("all", "icy", colors=["white", "cyan", "blue"]),
        ],
        "keep": [  # palette keeps shapes, sizes and cells, and adds nothing
            constraint("count", shapes=["circle"], sizes=["large"], positions=["top left"], min=1, max=4),
            constraint("count", min=1, max=1),
        ],
    }


def test_build_spec_double_alone_and_with_a_palette():
    circle = Obj("top left", "circle", "red", "large")
    square = Obj("center", "square", "blue", "small")
    prompt = Scene("white", (circle, square))
    spec = build_spec(prompt, circle, [get_concept("double")])
    assert spec["constraints"] == [
        constraint("count", "double", shapes=["circle"], colors=["red"], min=2, max=2),
        constraint("count", "double", min=3, max=3),
    ]
    assert spec["keep"] == [
        constraint("background", colors=["white"]),
        constraint("count", shapes=["circle"], colors=["red"], sizes=["large"], min=1, max=4),
        constraint("count", shapes=["square"], colors=["blue"], sizes=["small"], positions=["center"], min=1, max=4),
    ]
    # With icy, colour is the palette's business: "double the circle" then asks for two circles of any colour.
    spec = build_spec(prompt, circle, [get_concept("double"), get_concept("icy")])
    assert spec["constraints"][0] == constraint("count", "double", shapes=["circle"], min=2, max=2)
    assert constraint("count", shapes=["circle"], sizes=["large"], min=1, max=4) in spec["keep"]
    assert constraint("background", colors=["white"]) not in spec["keep"]


def test_build_spec_keeps_identical_objects_with_their_multiplicity():
    prompt = sc("white", ("top left", "ring", "red", "small"), ("bottom", "ring", "red", "small"))
    spec = build_spec(prompt, None, [get_concept("row")])
    assert constraint("count", shapes=["ring"], colors=["red"], sizes=["small"], min=2, max=4) in spec["keep"]


def test_elaborate_makes_minimal_edits():
    rng = random.Random(0)
    prompt = sc("white", ("top left", "circle", "red", "large"), ("center", "square", "blue", "small"))
    icy = elaborate(prompt, None, [get_concept("icy")], rng)
    # white is icy already and the blue square is icy: only the red circle changes (to cyan, not white).
    assert icy == sc("white", ("top left", "circle", "cyan", "large"), ("center", "square", "blue", "small"))
    night = elaborate(prompt, None, [get_concept("night")], rng)
    assert night == Scene("black", prompt.objects)  # blue is taken by the square, so black
    light = elaborate(prompt, prompt.objects[1], [get_concept("traffic light")], rng)
    # Built in the square's column, the only full column free of the circle.
    assert light == sc("white", ("top left", "circle", "red", "large"), ("top", "circle", "red", "small"),
                       ("center", "circle", "yellow", "small"), ("bottom", "circle", "green", "small"))  # fmt: skip
    lonely = elaborate(prompt, prompt.objects[0], [get_concept("alone")], rng)
    assert lonely == sc("white", ("top left", "circle", "red", "large"))
    sym = elaborate(prompt, None, [get_concept("symmetric")], rng)
    assert sym == sc("white", ("top left", "circle", "red", "large"), ("top right", "circle", "red", "large"),
                     ("center", "square", "blue", "small"))  # fmt: skip


def test_perturb_scene_changes_exactly_one_attribute():
    rng = random.Random(3)
    for _ in range(300):
        s = random_scene(rng)
        p = perturb_scene(s, rng)
        assert p != s
        if p.background != s.background:
            assert p.objects == s.objects
            continue
        gone, new = set(s.objects) - set(p.objects), set(p.objects) - set(s.objects)
        assert len(gone) == len(new) == 1
        a, b = gone.pop(), new.pop()
        assert sum(x != y for x, y in zip((a.pos, a.shape, a.color, a.size), (b.pos, b.shape, b.color, b.size))) == 1


def test_failing_elaborations_fail_as_labelled(items):
    rng = random.Random(0)
    for it in items[::4]:
        texts = failing_elaborations(it, rng)
        assert texts["omission"] == it["prompt"]
        assert not check(parse(texts["hallucination"]), it["spec"]).passed
        for kind, text in texts.items():
            assert classify_reprompt(text, it) == kind, (it["id"], kind, text)
