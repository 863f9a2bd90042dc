"""`seer eval --suite base`: scoring helpers, every metric on hand-written stub models, and the command end to end.

Expected figures are derived by hand from what each stub does: a literal stub (draws the prompt when it parses,
else a blank image; captions and answers what it was taught; tokenizer round trip is exact) scores 1.0 everywhere
except the naive concatenation (0.0, since it never parses); a red<->blue stub errs exactly on the scenes that
contain red or blue. The last tests run the real command on a random-weight Janus model at N = 1.
"""

import json
import random
import re
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

import seer.embedded
from seer.cli import main
from seer.errors import SeerError
from seer.eval.base import (
    TARGETS,
    KnowledgeQuestion,
    Target,
    answer_correct,
    caption_accuracy,
    caption_correct,
    cognitive_gap,
    eval_scenes,
    knowledge_accuracy,
    knowledge_questions,
    normalize_spacing,
    rate,
    rates_by,
    sample_seed,
    t2i_accuracy,
    take_stratified,
    vie_eval_items,
    vq_fidelity,
    yes_no_accuracy,
    yes_no_questions,
)
from seer.eval.command import EvalArgs, image_grid, load_vie_items, run_base_suite, write_outputs
from seer.models.base import ImageGeneration, TextGeneration
from seer.worlds.shapeworld.concepts import LEXICON, scene_has_concept
from seer.worlds.shapeworld.corpus import CAPTION_QUESTIONS, Example, _knowledge_turn, corpus_words
from seer.worlds.shapeworld.grammar import describe, parse, try_parse
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import COLORS

# Hand-written scenes: the 1st and 3rd contain red or blue, the 2nd and 4th do not.
SCENE_TEXTS = [
    "a large red circle at the center on a white background",
    "a small green square at the top left on a black background",
    "a large yellow ring at the left, a small blue bar at the right and a small pink cross at the bottom on a gray "
    "background",
    "a small orange triangle at the top, a large purple cross at the center and a large white bar at the bottom "
    "right on a brown background",
]
SCENES = [parse(t) for t in SCENE_TEXTS]
BLANK = Image.new("RGB", (32, 32), (128, 128, 128))  # one flat colour: the oracle reads no scene in it


def tokenizer_spacing(text: str) -> str:
    """How the word-level tokenizer decodes text: a space before each comma (written out by hand here)."""
    return text.replace(", ", " , ")


def yes_no_truth(question, scenes):
    """The true answer to a corpus yes/no question about `scenes`, read from the question by hand."""
    question = re.sub(r" beside the (?:first|second) image \?", " ?", question)  # the other image, only named
    question = re.sub(r"^does the ((?:first |second )?image) match the prompt \? prompt : (.+)$", r"does the \1 show \2 ?",
                      question)  # fmt: skip
    asked = question.partition(" prompt : ")[0]  # a concept question may quote the image's prompt: context only
    for concept in LEXICON:  # "does the first image look icy ?", "in the second image , are the shapes ... ?"
        for place, scene in zip(("first", "second"), scenes):
            spaced = concept.scene_question.replace("?", " ?")
            if asked in (spaced.replace("this scene", f"the {place} image"), f"in the {place} image , {spaced}"):
                return "Yes" if scene_has_concept(scene, concept) else "No"
    if m := re.fullmatch(r"does the (first|second) image show (.+) \?", question):
        truth = parse(m[2]) == scenes[("first", "second").index(m[1])]
    elif m := re.fullmatch(r"does the image show (.+) \?", question):
        truth = parse(m[1]) == scenes[0]
    elif m := re.fullmatch(r"is the background (\w+) \?", question):
        truth = scenes[0].background == m[1]
    elif m := re.fullmatch(r"is there a (\w+) at the ([\w ]+) \?", question):
        truth = any(o.shape == m[1] and o.pos == m[2] for o in scenes[0].objects)
    else:
        m = re.fullmatch(r"is there a (\w+) (\w+) \?", question)
        truth = any(o.color == m[1] and o.shape == m[2] for o in scenes[0].objects)
    return "Yes" if truth else "No"


class LiteralStub:
    """A perfect literal UMM: draws exactly the literal prompt it is given (a blank image when it does not parse),
    captions by reading the image, answers concept questions as taught, and round-trips images exactly."""

    image_size = 32
    default_guidance_scale = 3.0  # what the suite must use when --guidance_scale is not given

    def __init__(self):
        self.image_calls = []  # (prompts, seeds, guidance_scale, do_sample, temperature) per call
        self.calls_outside_no_adapter = 0
        self._inside = False
        self._store = []
        self._answers = {q.question: f"<think> {q.definition} </think> <answer> {q.answer} </answer>" for q in
                         knowledge_questions()}  # fmt: skip

    @contextmanager
    def no_adapter(self):
        self._inside = True
        try:
            yield
        finally:
            self._inside = False

    def _note_call(self):
        self.calls_outside_no_adapter += not self._inside

    def scene_for(self, text):
        return try_parse(text)

    def caption_of(self, scene):
        return describe(scene)

    def answer_to(self, question):
        return self._answers[question]

    def generate_images(self, prompts, *, seeds=None, guidance_scale=5.0, do_sample=True, temperature=1.0):
        self._note_call()
        self.image_calls.append((list(prompts), list(seeds), guidance_scale, do_sample, temperature))
        scenes = [self.scene_for(p) for p in prompts]
        images = [BLANK.copy() if s is None else render(s, 32) for s in scenes]
        return ImageGeneration(images=images, token_ids=torch.zeros(len(images), 1, dtype=torch.long))

    def generate_text(self, prompts, images=None, *, max_new_tokens=64, do_sample=True, temperature=1.0, seeds=None,
                      response_prefix=""):
        self._note_call()
        assert not do_sample  # every text figure is greedy
        if images is None:
            texts = [tokenizer_spacing(self.answer_to(p)) for p in prompts]
        else:
            texts = [
                tokenizer_spacing(self.caption_of(parse_image(imgs[0]))) if p in CAPTION_QUESTIONS
                else f"<think> x </think> <answer> {yes_no_truth(p, [parse_image(im) for im in imgs])} </answer>"
                for p, imgs in zip(prompts, images)
            ]  # fmt: skip
        return TextGeneration(texts=texts, token_ids=[[] for _ in texts], prompt_ids=[[] for _ in texts])

    def encode_images(self, images):
        self._note_call()
        self._store += list(images)
        return torch.arange(len(self._store) - len(images), len(self._store))[:, None]

    def decode_tokens(self, token_ids):
        return [self.decode_one(self._store[int(i)]) for i in token_ids[:, 0]]

    def decode_one(self, image):
        return image.copy()


SWAP = {"red": "blue", "blue": "red"}


def swap_red_blue(text):
    return " ".join(SWAP.get(word, word) for word in text.split())


class RedBlueStub(LiteralStub):
    """Wrong in known ways: draws, captions and round-trips red as blue and blue as red; answers every concept
    question 'No' (with the right definition in the think block)."""

    def scene_for(self, text):
        return try_parse(swap_red_blue(text))

    def caption_of(self, scene):
        return swap_red_blue(describe(scene))

    def answer_to(self, question):
        return f"<think> {self._answers[question].split('<think>')[1].split('</think>')[0].strip()} </think> " \
               "<answer> No </answer>"  # fmt: skip

    def decode_one(self, image):
        arr = np.array(image)
        red, blue = np.all(arr == COLORS["red"], axis=-1), np.all(arr == COLORS["blue"], axis=-1)
        arr[red], arr[blue] = COLORS["blue"], COLORS["red"]
        return Image.fromarray(arr)


# ---- pure scoring helpers ----


def test_normalize_spacing_splits_punctuation_and_collapses_whitespace():
    assert normalize_spacing("white, cyan and blue") == "white , cyan and blue"
    assert normalize_spacing("  what does icy mean?  ") == "what does icy mean ?"
    assert normalize_spacing("a ,b") == "a , b"


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("<think> icy means white , cyan and blue </think> <answer> white , cyan and blue </answer>", True),
        ("<think> icy means white, cyan and blue </think> <answer> white, cyan and blue </answer>", True),
        ("<think> anything at all </think> <answer> white , cyan and blue </answer>", True),  # think is not graded
        ("<think> icy means white , cyan and blue </think> <answer> No </answer>", False),
        ("<think> x </think> <answer> white , cyan and blue . </answer>", False),  # an extra word
        ("<think> x </think> <answer> white , cyan and blue", False),  # format broken: no closing tag
        ("white , cyan and blue", False),  # no format at all
        ("<think> x </think> <answer> white , cyan and blue </answer> <answer> red </answer>", False),
    ],
)
def test_answer_correct_grades_the_answer_block_strictly(completion, correct):
    assert answer_correct(completion, "white, cyan and blue") is correct


def test_caption_correct_reads_the_strict_grammar_in_any_object_order():
    scene = SCENES[2]
    assert caption_correct(SCENE_TEXTS[2], scene)
    assert caption_correct(
        "a small pink cross at the bottom , a large yellow ring at the left and a small blue bar at the right on a "
        "gray background",
        scene,
    )
    assert not caption_correct(SCENE_TEXTS[2] + " .", scene)  # a final period is outside the grammar
    assert not caption_correct(SCENE_TEXTS[2].replace("pink", "red"), scene)
    assert not caption_correct(SCENE_TEXTS[0], scene)


def test_rate_and_rates_by_on_hand_counts():
    assert rate([True, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        rate([])
    assert rates_by([True, False, True, False, False], ["b", "a", "a", "b", "b"]) == {
        "a": {"value": 0.5, "n": 2},
        "b": {"value": 1 / 3, "n": 3},
    }


def test_targets_compare_in_their_direction_and_match_world_md():
    assert Target(">=", 0.9).met_by(0.9) and not Target(">=", 0.9).met_by(0.89)
    assert Target("<=", 0.25).met_by(0.25) and not Target("<=", 0.25).met_by(0.26)
    assert {name: (t.comparison, t.bound) for name, t in TARGETS.items()} == {
        "t2i_1_object": (">=", 0.90),
        "t2i_3_objects": (">=", 0.75),
        "caption_exact": (">=", 0.90),
        "knowledge_qa": (">=", 0.95),
        "vqa_yes_no": (">=", 0.90),
        "vie_naive_satisfied": ("<=", 0.25),
        "vie_gold_passed": (">=", 0.85),
        "vq_fidelity": (">=", 0.97),
    }


def test_sample_seeds_are_reproducible_and_distinct():
    assert sample_seed(0, "vie", 3) == sample_seed(0, "vie", 3)
    seeds = {sample_seed(s, f, i) for s in (0, 1) for f in ("vie", "t2i_1_object") for i in range(50)}
    assert len(seeds) == 200


def test_take_stratified_round_robins_over_groups_in_first_seen_order():
    items = ["a1", "a2", "a3", "b1", "c1", "c2"]
    assert take_stratified(items, 4, key=lambda s: s[0]) == ["a1", "b1", "c1", "a2"]
    assert take_stratified(items, 10, key=lambda s: s[0]) == ["a1", "b1", "c1", "a2", "c2", "a3"]


# ---- held-out data ----


def test_knowledge_questions_are_what_pretraining_teaches():
    questions = knowledge_questions()
    taught = {(q.question, f"<think> {q.definition} </think> <answer> {q.answer} </answer>") for q in questions}
    rng = random.Random(0)
    for concept in LEXICON:  # the corpus's own knowledge turns, drawn at random, are all in the eval set
        for _ in range(3):
            assert _knowledge_turn(concept, rng) in taught
    icy = [q for q in questions if q.question == "what does icy mean?"]
    assert icy == [KnowledgeQuestion("icy", "palette", "what does icy mean?", "icy means white, cyan and blue",
                                     "icy means white, cyan and blue")]  # fmt: skip
    assert sorted(q.concept for q in knowledge_questions(len(LEXICON))) == sorted(c.name for c in LEXICON)


def test_eval_scenes_are_seeded_per_figure_with_the_asked_object_count():
    scenes = eval_scenes(0, "t2i_3_objects", 20, n_objects=3)
    assert all(len(s.objects) == 3 for s in scenes)
    assert scenes == eval_scenes(0, "t2i_3_objects", 20, n_objects=3)
    assert scenes != eval_scenes(1, "t2i_3_objects", 20, n_objects=3)
    assert scenes != eval_scenes(0, "other", 20, n_objects=3)


def test_vie_eval_items_cover_the_cells_evenly():
    items = vie_eval_items(0, 24)
    cells = [(it["category"], it["difficulty"], it["split"]) for it in items]
    assert len(set(cells)) == 24  # 6 categories x 2 difficulties x 2 splits, one each
    assert len(set(cells[:5])) == 5


# ---- metrics on stubs ----


def test_literal_stub_scores_one_on_every_image_and_text_figure():
    model = LiteralStub()
    seeds = [11, 12, 13, 14]
    assert t2i_accuracy(model, SCENES, seeds, batch_size=3).value == 1.0
    assert caption_accuracy(model, SCENES, batch_size=3).value == 1.0
    assert knowledge_accuracy(model, knowledge_questions(), batch_size=16).value == 1.0
    assert vq_fidelity(model, SCENES, batch_size=3).value == 1.0
    # The prompts and seeds reach the generator in order, over uneven batches, with the settings asked for.
    prompts = [p for call in model.image_calls for p in call[0]]
    assert prompts == SCENE_TEXTS
    assert [s for call in model.image_calls for s in call[1]] == seeds
    assert [len(call[0]) for call in model.image_calls] == [3, 1]
    assert model.image_calls[0][2:] == (None, True, 1.0)  # no scale asked for: the model's own default decides


def test_red_blue_stub_fails_exactly_on_the_red_and_blue_scenes():
    model = RedBlueStub()
    for measurement in (
        t2i_accuracy(model, SCENES, [1, 2, 3, 4], batch_size=3),
        caption_accuracy(model, SCENES, batch_size=3),
        vq_fidelity(model, SCENES, batch_size=3),
    ):
        assert measurement.value == 0.5 and measurement.n == 4
        assert [s["correct"] for s in measurement.samples] == [False, True, False, True]
        assert len(measurement.images) == 4
    t2i = t2i_accuracy(model, SCENES, [1, 2, 3, 4], batch_size=4)
    assert t2i.samples[0]["oracle_read"] == "a large blue circle at the center on a white background"
    assert t2i.extras["readable"] == 1.0


def test_knowledge_answered_no_scores_zero_with_format_and_definition_intact():
    questions = knowledge_questions(6)
    result = knowledge_accuracy(RedBlueStub(), questions, batch_size=4)
    assert result.value == 0.0 and result.n == 6
    assert result.extras == {"format_ok": 1.0, "think_is_definition": 1.0}
    assert knowledge_accuracy(LiteralStub(), questions, batch_size=4).extras == result.extras


def test_temperature_zero_means_greedy_image_decoding():
    model = LiteralStub()
    t2i_accuracy(model, SCENES[:1], [5], guidance_scale=1.0, temperature=0.0)
    assert model.image_calls[0][2:4] == (1.0, False)


def test_cognitive_gap_of_a_literal_generator():
    items = vie_eval_items(0, 24)  # one item per cell
    model = LiteralStub()
    seeds = [100 + i for i in range(24)]
    naive, gold = cognitive_gap(model, items, seeds, batch_size=10)
    # The naive text never parses (a blank image satisfies nothing); the gold one is drawn exactly and passes.
    assert (naive.value, naive.n, gold.value, gold.n) == (0.0, 24, 1.0, 24)
    assert naive.samples[0]["text"] == f"{items[0]['instruction']} {items[0]['prompt']}"
    assert gold.samples[0]["text"] == items[0]["gold"]
    assert naive.breakdown["category"]["palette"] == {"value": 0.0, "n": 4}
    assert gold.breakdown["difficulty"] == {"hard": {"value": 1.0, "n": 12}, "simple": {"value": 1.0, "n": 12}}
    assert gold.breakdown["split"] == {"id": {"value": 1.0, "n": 12}, "ood": {"value": 1.0, "n": 12}}
    # The naive and gold images of one item share its seed.
    seed_of = {p: s for call in model.image_calls for p, s in zip(call[0], call[1])}
    assert [seed_of[it["gold"]] for it in items] == seeds
    assert [seed_of[s["text"]] for s in naive.samples] == seeds


def test_cognitive_gap_of_a_generator_that_understands_instructions_and_one_blind_to_hard_golds():
    items = vie_eval_items(0, 24)
    naive_to_gold = {f"{it['instruction']} {it['prompt']}": it["gold"] for it in items}
    hard_golds = {it["gold"] for it in items if it["difficulty"] == "hard"}

    class Understands(LiteralStub):  # no cognitive gap: draws the gold scene from the naive text
        def scene_for(self, text):
            return try_parse(naive_to_gold.get(text, text))

    class HardBlind(LiteralStub):  # cannot draw the gold elaboration of hard items
        def scene_for(self, text):
            return None if text in hard_golds else try_parse(text)

    naive, _ = cognitive_gap(Understands(), items, list(range(24)))
    assert naive.value == 1.0 and not TARGETS["vie_naive_satisfied"].met_by(naive.value)
    _, gold = cognitive_gap(HardBlind(), items, list(range(24)))
    assert gold.value == 0.5
    assert gold.breakdown["difficulty"] == {"hard": {"value": 0.0, "n": 12}, "simple": {"value": 1.0, "n": 12}}


# ---- the suite and its outputs ----


def small_args(tmp_path, **overrides):
    sizes = dict(n_t2i=2, n_caption=2, n_qa=3, n_vqa=2, n_vie=2, n_vq=2, batch_size=2)
    return EvalArgs(output_dir=str(tmp_path), **{**sizes, **overrides})


def test_base_suite_on_the_literal_stub_passes_every_target_and_writes_outputs(tmp_path):
    model = LiteralStub()
    results = run_base_suite(model, small_args(tmp_path))
    assert list(results) == list(TARGETS)  # every figure, in the table's order
    values = {name: r.measurement.value for name, r in results.items()}
    assert values == {name: 0.0 if name == "vie_naive_satisfied" else 1.0 for name in TARGETS}
    assert model.calls_outside_no_adapter == 0  # the base model: every call with adapters disabled
    report = write_outputs(tmp_path, results, {"suite": "base"})
    assert report["all_passed"] and report["skipped"] == []
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["figures"]["t2i_3_objects"]["target"] == ">= 0.75"
    assert on_disk["figures"]["t2i_3_objects"]["n"] == 2 and on_disk["figures"]["knowledge_qa"]["n"] == 3
    # No --guidance_scale: the model's own default is used for every image, and recorded.
    assert on_disk["figures"]["vie_gold_passed"]["guidance_scale"] == 3.0
    assert {call[2] for call in model.image_calls} == {3.0}
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 2 + 2 + 3 + 2 + 2 + 2 + 2
    # 5 image rows (t2i x2, naive, gold, vq) of 2 images of 32 px, scaled x2 with 2 px padding.
    assert Image.open(tmp_path / "samples.png").size == (2 + 2 * 66, 2 + 5 * 66)


def test_base_suite_skips_figures_with_n_zero_and_reports_failures(tmp_path):
    results = run_base_suite(RedBlueStub(), small_args(tmp_path, n_vq=0, n_t2i=0, n_vqa=0))
    assert list(results) == ["caption_exact", "knowledge_qa", "vie_naive_satisfied", "vie_gold_passed"]
    report = write_outputs(tmp_path, results, {})
    assert not write_outputs(tmp_path, {}, {})["all_passed"]  # nothing measured is not a pass
    report = write_outputs(tmp_path, results, {})
    assert report["skipped"] == ["t2i_1_object", "t2i_3_objects", "vqa_yes_no", "vq_fidelity"]
    assert report["figures"]["knowledge_qa"]["passed"] is False and report["all_passed"] is False


def test_yes_no_accuracy_grades_the_verdict_against_a_hand_reading_of_each_question():
    questions = yes_no_questions(0, 40)
    assert {q.task for q in questions} == {"vqa", "two_images"} and questions == yes_no_questions(0, 40)
    perfect = yes_no_accuracy(LiteralStub(), questions, batch_size=16)
    assert perfect.value == 1.0 and perfect.n == 40  # the corpus's labels agree with the hand reading

    class AlwaysYes(LiteralStub):
        def generate_text(self, prompts, images=None, **kwargs):
            texts = ["<think> x </think> <answer> Yes </answer>"] * len(prompts)
            return TextGeneration(texts=texts, token_ids=[[] for _ in texts], prompt_ids=[[] for _ in texts])

    truths = [yes_no_truth(q.prompt, q.scenes) for q in questions]
    assert yes_no_accuracy(AlwaysYes(), questions).value == truths.count("Yes") / 40
    hand = [Example("vqa", "is the background white ?", "<think> x </think> <answer> Yes </answer>", (SCENES[0],))]
    assert yes_no_accuracy(LiteralStub(), hand).value == 1.0
    wrong = [Example("vqa", "is the background white ?", "<think> x </think> <answer> No </answer>", (SCENES[0],))]
    assert yes_no_accuracy(LiteralStub(), wrong).value == 0.0  # a wrong label is counted against the model


def test_image_grid_lays_out_scaled_rows_on_white():
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    grid = image_grid([[red], [blue, red]], scale=2, pad=2)
    assert grid.size == (2 + 2 * 66, 2 + 2 * 66)
    assert grid.getpixel((2, 2)) == (255, 0, 0) and grid.getpixel((65, 65)) == (255, 0, 0)
    assert grid.getpixel((66, 2)) == (255, 255, 255)  # padding
    assert grid.getpixel((68, 2)) == (255, 255, 255)  # the empty second cell of the first row
    assert grid.getpixel((2, 68)) == (0, 0, 255) and grid.getpixel((68, 68)) == (255, 0, 0)


def test_vie_file_items_without_spec_are_refused_naming_the_file_and_item(tmp_path):
    path = tmp_path / "mine.jsonl"
    record = {"id": "x-1", "category": "palette", "difficulty": "simple", "split": "id",
              "prompt": SCENE_TEXTS[0], "instruction": "make it icy"}  # fmt: skip
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(SeerError, match=r"mine\.jsonl: item 'x-1': field 'spec' is missing"):
        load_vie_items(str(path), 10)


# ---- the command ----


def test_seer_eval_end_to_end_on_a_random_weight_janus(tmp_path, capsys):
    from seer.models.janus import JanusUMM

    model_dir = tmp_path / "model"
    JanusUMM.from_shape("shapeworld-tiny", seed=0, words=corpus_words()).save_pretrained(model_dir)
    out = tmp_path / "eval"
    sizes = ["--n_t2i", "1", "--n_caption", "1", "--n_qa", "1", "--n_vqa", "1", "--n_vie", "1", "--n_vq", "1"]
    assert main(["eval", "--model", str(model_dir), "--output_dir", str(out), *sizes, "--max_new_tokens", "8"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["figures"]) == list(TARGETS)
    for name, figure in results["figures"].items():
        assert 0.0 <= figure["value"] <= 1.0 and figure["n"] == 1, name
        assert figure["passed"] == TARGETS[name].met_by(figure["value"])
    assert results["model"] == str(model_dir) and results["wall_s"] > 0
    assert "n_t2i: 1" in (out / "config.yaml").read_text()
    assert len((out / "samples.jsonl").read_text().splitlines()) == 8
    assert Image.open(out / "samples.png").size == (2 + 66, 2 + 5 * 66)
    assert "vq_fidelity" in capsys.readouterr().out
    # The saved config re-runs the same evaluation: same seeds, same images, same samples, byte for byte.
    again = tmp_path / "again"
    assert main(["eval", "--config", str(out / "config.yaml"), "--output_dir", str(again)]) == 0
    assert (again / "samples.jsonl").read_bytes() == (out / "samples.jsonl").read_bytes()


def test_missing_model_directory_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tmp_path / "nope"), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err and err.startswith("error: ")
    assert not out.exists()  # nothing written


def test_missing_embedded_model_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(seer.embedded, "EMBEDDED_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(SeerError, match=r"seer pretrain --config recipes/pretrain/shapeworld-tiny\.yaml.*--model DIR"):
        seer.embedded.load_embedded_model()
    assert main(["eval", "--output_dir", str(tmp_path / "eval")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("option, value", [("--batch_size", "0"), ("--temperature", "-1"), ("--n_vie", "-2")])
def test_bad_numbers_are_one_line_errors(tmp_path, capsys, option, value):
    assert main(["eval", "--output_dir", str(tmp_path), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option.lstrip("-") in err
