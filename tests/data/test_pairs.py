"""RLVR pairs: labels agree with the oracle, kept/dropped counts derived by hand, Yes/No balance, determinism, cache.

Two stub generators make the counts derivable: `LiteralRenderer` draws every literal text exactly (so every
candidate is kept: VIE items guarantee that the gold passes and the prompt fails, perturbations and hallucinations
change the scene), and `OneObjectStub` draws only 1-object texts and a blank image otherwise (so exactly the
candidates whose good text has one object survive).
"""

import json
import os
import shutil
from contextlib import contextmanager

import pytest
from PIL import Image

from seer.data.pairs import (
    FAILURE_KINDS,
    PAIRS_FILE,
    SUMMARY_FILE,
    LiteralRenderer,
    PairSettings,
    QuestionTemplates,
    RenderedImages,
    build_or_load_pairs,
    build_pairs,
    load_pairs,
    oracle_view,
    passes,
)
from seer.data.vie import item_from_dict
from seer.errors import SeerError
from seer.models.janus import JanusUMM
from seer.worlds.shapeworld.grammar import parse, try_parse
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import render

ITEMS = [item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",))]  # 12 items, 6 categories x 2
BY_ID = {item.id: item for item in ITEMS}
SETTINGS = PairSettings(seed=0, model_id="stub")


class OneObjectStub:
    """Draws a text exactly if it is a literal 1-object prompt, else a blank image; records every request."""

    def __init__(self):
        self.requests = []
        self.frozen = False

    @contextmanager
    def no_adapter(self):
        self.frozen = True
        yield
        self.frozen = False

    def generate_images(self, prompts, *, seeds=None, **kwargs):
        assert self.frozen, "pair images must come from the frozen generator (inside no_adapter)"
        self.requests += list(zip(prompts, seeds))
        scenes = [try_parse(text) for text in prompts]
        return RenderedImages([
            render(s) if s is not None and len(s.objects) == 1 else Image.new("RGB", (32, 32)) for s in scenes
        ])  # fmt: skip


def one_object(text):
    return " and " not in text  # the grammar joins 2-4 objects with "and"


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return build_pairs(LiteralRenderer(), ITEMS, tmp_path_factory.mktemp("pairs") / "exact", SETTINGS)


@pytest.fixture(scope="module")
def one_object_pairs(tmp_path_factory):
    return build_pairs(OneObjectStub(), ITEMS, tmp_path_factory.mktemp("pairs") / "one", SETTINGS)


def test_exact_generator_keeps_every_candidate(exact):
    s1, s2 = exact.summary["stage1"], exact.summary["stage2"]
    assert (s1["candidates"], s1["kept"]) == (12, 12)  # one perturbed-prompt candidate per item
    assert (s2["candidates"], s2["kept"]) == (36, 36)  # one per failure kind per item
    assert s1["dropped"] == s2["dropped"] == {"good_failed": 0, "bad_passed": 0, "balance": 0}
    assert {p.item_id for p in exact.pairs} == set(BY_ID)  # pairs come from the given items only


def test_one_object_generator_counts_by_hand(one_object_pairs):
    n_prompt = sum(one_object(item.prompt) for item in ITEMS)  # stage 1 survives iff the prompt has one object
    n_gold = sum(one_object(item.gold) for item in ITEMS)  # stage 2 survives iff the gold has one object
    assert 0 < n_prompt < len(ITEMS) and 0 < n_gold < len(ITEMS)  # both outcomes occur in this item set
    s1, s2 = one_object_pairs.summary["stage1"], one_object_pairs.summary["stage2"]
    assert s1["dropped"]["good_failed"] == len(ITEMS) - n_prompt
    assert s1["kept"] + s1["dropped"]["balance"] == n_prompt and s1["dropped"]["balance"] == n_prompt % 2
    assert s2["dropped"]["good_failed"] == 3 * (len(ITEMS) - n_gold)
    assert s2["kept"] + s2["dropped"]["balance"] == 3 * n_gold and s2["dropped"]["balance"] == (3 * n_gold) % 2
    assert s1["dropped"]["bad_passed"] == s2["dropped"]["bad_passed"] == 0


@pytest.mark.parametrize("name", ["exact", "one_object_pairs"])
def test_labels_agree_with_the_oracle(name, request):
    pair_set = request.getfixturevalue(name)
    assert pair_set.pairs
    for pair in pair_set.pairs:
        item = BY_ID[pair.item_id]
        first, second = pair_set.images(pair)
        assert passes(pair.stage, first, item) == (pair.answer == "Yes"), pair.id
        assert passes(pair.stage, second, item) == (pair.answer == "No"), pair.id
        swapped_first, _ = pair_set.images(pair, swapped=True)
        assert swapped_first.tobytes() == second.tobytes()


def test_yes_and_no_are_exactly_balanced_per_stage_and_nearly_per_kind(exact):
    for stage in (1, 2):
        answers = [p.answer for p in exact.stage(stage)]
        assert answers.count("Yes") == answers.count("No") == len(answers) // 2
    for kind in FAILURE_KINDS:
        answers = [p.answer for p in exact.pairs if p.bad_kind == kind]
        assert abs(answers.count("Yes") - answers.count("No")) <= 1


def test_stage_texts_are_what_the_pair_kinds_say(exact):
    for pair in exact.pairs:
        item = BY_ID[pair.item_id]
        if pair.stage == 1:
            assert pair.good_text == item.prompt and parse(pair.bad_text) != parse(item.prompt)
        else:
            assert pair.good_text == item.gold
            if pair.bad_kind == "hallucination":  # the gold with something changed
                assert parse(pair.bad_text) != parse(item.gold)
            else:
                expected_bad = {"naive": f"{item.instruction} {item.prompt}", "omission": item.prompt}
                assert pair.bad_text == expected_bad[pair.bad_kind]


class RecordingRenderer(OneObjectStub):
    """Draws every literal text exactly (as LiteralRenderer) and records the requests."""

    def generate_images(self, prompts, *, seeds=None, **kwargs):
        assert self.frozen, "pair images must come from the frozen generator (inside no_adapter)"
        self.requests += list(zip(prompts, seeds))
        return LiteralRenderer().generate_images(prompts)


def test_images_of_an_item_share_one_seed_and_come_from_the_frozen_generator(tmp_path):
    stub = RecordingRenderer()
    pairs = build_pairs(stub, ITEMS[:3], tmp_path / "p", SETTINGS)
    assert len(pairs.pairs) == (3 - 1) + (9 - 1)  # all kept (exact drawing), minus the odd pair out of each stage
    for pair in pairs.pairs:  # both images of every pair were generated at the pair's seed
        assert {(pair.good_text, pair.seed), (pair.bad_text, pair.seed)} <= set(stub.requests)
    seeds = {}
    for pair in pairs.pairs:
        seeds.setdefault(pair.item_id, set()).add(pair.seed)
    assert all(len(s) == 1 for s in seeds.values())  # one seed per item ...
    assert len({next(iter(s)) for s in seeds.values()}) == 3  # ... and items do not share seeds
    assert len(stub.requests) == len(set(stub.requests)) == 3 * 5  # prompt, perturbed, gold, naive, hallucination


def test_building_is_deterministic_and_cached(tmp_path):
    a = build_pairs(LiteralRenderer(), ITEMS[:4], tmp_path / "a", SETTINGS)
    b = build_pairs(LiteralRenderer(), ITEMS[:4], tmp_path / "b", SETTINGS)
    for name in (PAIRS_FILE, SUMMARY_FILE):
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes()
    images_a = {p.name: p.read_bytes() for p in (a.root / "images").iterdir()}
    assert images_a == {p.name: p.read_bytes() for p in (b.root / "images").iterdir()}

    stub = OneObjectStub()
    first = build_or_load_pairs(stub, ITEMS[:4], tmp_path / "cache", "train", SETTINGS)
    calls = len(stub.requests)
    again = build_or_load_pairs(stub, ITEMS[:4], tmp_path / "cache", "train", SETTINGS)
    assert len(stub.requests) == calls and again.pairs == first.pairs and again.root == first.root  # re-used
    other = build_or_load_pairs(stub, ITEMS[:4], tmp_path / "cache", "train", PairSettings(seed=1, model_id="stub"))
    assert other.root != first.root and len(stub.requests) > calls  # another seed is another set


def test_a_complete_set_written_meanwhile_is_kept_and_an_incomplete_one_replaced(tmp_path):
    # Two runs sharing a pair cache can build one set at once; the second to finish must not delete the first's
    # images under a run already reading them. Built sequentially here: a complete set is there when one is written.
    first = build_pairs(OneObjectStub(), ITEMS[:4], tmp_path / "p", SETTINGS)
    written = {p: p.read_bytes() for p in first.root.rglob("*") if p.is_file()}
    second = build_pairs(LiteralRenderer(), ITEMS[:4], tmp_path / "p", SETTINGS)  # would keep more pairs
    assert len(first.pairs) < len(build_pairs(LiteralRenderer(), ITEMS[:4], tmp_path / "x", SETTINGS).pairs)
    assert second.pairs == first.pairs and second.summary == first.summary
    assert {p: p.read_bytes() for p in first.root.rglob("*") if p.is_file()} == written
    assert not list(tmp_path.glob(".p.*.tmp"))  # the discarded build leaves no staging directory

    torn = tmp_path / "torn"
    (torn / "images").mkdir(parents=True)
    (torn / "images" / "stray.png").write_bytes(b"x")  # a build that died before its summary.json
    rebuilt = build_pairs(LiteralRenderer(), ITEMS[:4], torn, SETTINGS)
    assert (torn / SUMMARY_FILE).is_file() and not (torn / "images" / "stray.png").exists()
    assert load_pairs(torn).pairs == rebuilt.pairs


def test_a_set_that_lands_between_the_check_and_the_rename_is_kept(tmp_path, monkeypatch):
    other = build_pairs(OneObjectStub(), ITEMS[:4], tmp_path / "other", SETTINGS)
    rename = os.replace

    def another_run_lands_first(src, dst):
        shutil.copytree(other.root, dst)  # another run's complete set arrives just before ours is renamed
        rename(src, dst)  # the real rename then fails: the target is a non-empty directory

    monkeypatch.setattr("seer.data.pairs.os.replace", another_run_lands_first)
    kept = build_pairs(LiteralRenderer(), ITEMS[:4], tmp_path / "p", SETTINGS)
    assert kept.pairs == other.pairs and kept.root == tmp_path / "p"
    assert not list(tmp_path.glob(".p.*.tmp"))


def test_the_model_path_counts_what_a_random_generator_gets_dropped(tmp_path):
    umm = JanusUMM.from_shape("shapeworld-tiny", seed=0)
    pairs = build_pairs(umm, ITEMS[:2], tmp_path / "p", PairSettings(seed=0, failures=("naive",), model_id="random"))
    assert pairs.pairs == []  # random weights draw noise: no good image reads as its prompt
    assert pairs.summary["stage1"]["dropped"]["good_failed"] == 2
    assert pairs.summary["stage2"]["dropped"]["good_failed"] == 2


def test_items_without_spec_or_gold_are_refused_with_one_line(tmp_path):
    bad = item_from_dict({**ITEMS[0].to_dict(), "gold": None}, "x")
    with pytest.raises(SeerError) as error:
        build_pairs(LiteralRenderer(), [bad], tmp_path / "p", SETTINGS, where="my.jsonl")
    message = str(error.value)
    assert message.startswith("my.jsonl: item") and "'gold'" in message and "\n" not in message


TEMPLATES = QuestionTemplates("p {prompt} ?", "p {prompt} i {instruction} ?", answer_suffix="fmt", system_prompt="s")


def test_question_templates():
    templates = TEMPLATES
    assert templates.question(1, "a red circle", "icy") == "p a red circle ?"
    assert templates.question(2, "a red circle", "icy") == "p a red circle i icy ?"
    assert QuestionTemplates("{prompt}", "{prompt} {instruction}").question(1, "x", "y") == "x"
    with pytest.raises(ValueError, match="instruction_question"):
        QuestionTemplates("{prompt}", "{prompt} only")
    with pytest.raises(ValueError, match="prompt_question"):
        QuestionTemplates("{prompt} {colour}", "{prompt} {instruction}")


def test_question_text_has_system_prompt_question_and_suffix_in_order(exact):
    pair = exact.stage(2)[0]
    assert TEMPLATES.text(pair) == f"s p {pair.prompt} i {pair.instruction} ? fmt"


def test_load_pairs_names_the_bad_line(exact, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / SUMMARY_FILE).write_text("{}")
    lines = (exact.root / PAIRS_FILE).read_text().splitlines()
    record = json.loads(lines[1])
    del record["seed"]
    (copy / PAIRS_FILE).write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(SeerError, match=r"pairs.jsonl:2: not a pair record"):
        load_pairs(copy)


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda path: path.write_bytes(b"not an image at all"), "not a readable image"),
        (lambda path: path.write_bytes(path.read_bytes()[:40]), "not a readable image"),  # a torn write
        (lambda path: path.unlink(), "not a readable image"),
    ],
)
def test_a_damaged_pair_image_is_a_one_line_error_when_the_cache_is_loaded(exact, tmp_path, damage, needle):
    copy = tmp_path / "copy"
    shutil.copytree(exact.root, copy)
    assert len(load_pairs(copy).pairs) == len(exact.pairs)  # the intact copy loads
    victim = copy / exact.pairs[0].bad_image
    damage(victim)
    with pytest.raises(SeerError, match=needle) as error:
        load_pairs(copy)
    assert str(victim) in str(error.value) and "\n" not in str(error.value)


def test_literal_renderer_draws_the_literal_ending_and_blank_otherwise():
    item = ITEMS[0]
    naive, nonsense = LiteralRenderer().generate_images([f"{item.instruction} {item.prompt}", "make it icy"]).images
    assert parse_image(naive) == parse(item.prompt)  # the instruction words are ignored, as a literal generator does
    assert parse_image(nonsense) is None


def test_oracle_view_downscales_large_generations():
    big = render(parse(ITEMS[0].prompt), 64).resize((384, 384), Image.Resampling.NEAREST)
    assert oracle_view(big).size == (64, 64)
    assert parse_image(oracle_view(big)) == parse(ITEMS[0].prompt)
