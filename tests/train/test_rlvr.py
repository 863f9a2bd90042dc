"""`seer rlvr` end to end on a small random-weight Janus, plus its pieces: output directory rules, recipes, the
curriculum data TRL reads, the prompt TRL renders, reward health and resume.

The model: a small Janus shape (fast on 2 cores) whose random weights are fitted for ~1 s to answer in the
``<think> ... </think> <answer> Yes|No </answer>`` format with a random verdict. That is what the embedded model
brings to RLVR (the format, not the task), and it makes GRPO groups differ in reward, so training moves the
adapter. Pair images are exact renders (`pair_generator: renderer`), since random weights draw noise.
"""

import dataclasses
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from trl.data_utils import prepare_multimodal_messages

from seer.cli import main as cli_main
from seer.config import parse
from seer.data.curriculum import CurriculumState
from seer.data.pairs import LiteralRenderer, PairSettings, build_pairs
from seer.data.vie import item_from_dict
from seer.errors import SeerError
from seer.formats import format_answer
from seer.train.rlvr import (
    ARG_TYPES,
    CurriculumData,
    RLVRArgs,
    check_vocabulary,
    latest_checkpoint,
    load_model,
    oracle_checklists,
    prepare_output_dir,
    run,
)
from seer.worlds.shapeworld.checklist import Checklist, first_error
from seer.worlds.shapeworld.grammar import parse as parse_scene
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import random_scene

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "rlvr"
# What a small run needs: 6 training items, 4 held out, 2 questions x 4 answers per step, short answers.
SMALL_RUN = dict(
    pair_generator="renderer", max_train_items=6, heldout_items=4, prompts_per_step=2, num_generations=4,
    max_completion_length=12, learning_rate=1e-2, max_bad_reward_steps=10, eval_batch_size=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def format_weights(small_janus):
    """Weights of the small Janus after ~1 s of fitting random-verdict answers in the format to two-image questions."""
    umm = small_janus()
    rng = random.Random(0)
    torch.manual_seed(0)
    question = "does the first image match the prompt better than the second image ? prompt : {}"
    optimizer = torch.optim.AdamW(umm.janus.parameters(), lr=3e-3)
    for _ in range(40):
        scenes = [random_scene(rng) for _ in range(16)]
        answers = [format_answer("the first image", rng.choice(["Yes", "No"])) + " <eos>" for _ in range(8)]
        out = umm.token_logprobs(
            [question.format("a large red circle at the center on a white background")] * 8,
            answers,
            [[render(scenes[2 * i]), render(scenes[2 * i + 1])] for i in range(8)],
        )
        loss = -out.logprobs.sum() / out.mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: t.detach().clone() for name, t in umm.janus.state_dict().items()}


@pytest.fixture(scope="module")
def small_model(small_janus):
    """A factory: the small Janus, with `weights` loaded when given."""

    def build(weights=None):
        umm = small_janus()
        if weights is not None:
            umm.janus.load_state_dict(weights)
        return umm

    return build


def base_weights(umm):
    """The base model's weights by their plain names (PEFT renames wrapped layers to ...base_layer...)."""
    state = umm.janus.state_dict()
    return {n.replace(".base_layer", ""): t.detach().clone() for n, t in state.items() if ".lora_" not in n}


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_step_run_trains_the_adapter_and_leaves_the_base_bit_identical(tmp_path, format_weights, small_model):
    out = tmp_path / "run"
    umm = small_model(format_weights)
    before = base_weights(umm)
    args = RLVRArgs(**SMALL_RUN, max_steps=2, curriculum_switch_step=1, curriculum_threshold=None, save_steps=1,
                    output_dir=str(out))  # fmt: skip
    assert run(args, umm, "small") == 0

    after = base_weights(umm)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    adapter = load_file(out / "evaluator" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # lora_B starts at exactly zero
    checkpoint = load_file(out / "checkpoint-1" / "evaluator" / "adapter_model.safetensors")
    assert any(not torch.equal(checkpoint[k], adapter[k]) for k in adapter)  # step 2 moved it again

    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["curriculum/stage"] for r in rows] == [1.0, 2.0] and rows[1]["curriculum/switch"] == 1.0
    assert rows[0]["health/zero_variance_groups"] < 1.0  # the answers of a group differ in reward
    assert rows[0]["kl"] == 0.0 and rows[1]["kl"] > 0.0  # beta is on; the reference is where the adapter started
    assert yaml.safe_load((out / "config.yaml").read_text())["max_steps"] == 2
    assert json.loads((out / "checkpoint-1" / "curriculum.json").read_text())["first_stage2_step"] == 2
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "completed" and results["steps"] == 2


def test_resumed_run_ends_with_the_adapter_of_the_uninterrupted_run(tmp_path, format_weights, small_model):
    # Threshold 0 switches after the first held-out evaluation (step 1), effective at step 3: after checkpoint-2.
    # So the resumed run trains on the right stage only if it restores the curriculum too.
    settings = dict(**SMALL_RUN, max_steps=4, curriculum_switch_step=None, curriculum_threshold=0.0,
                    curriculum_eval_steps=1, save_steps=2)  # fmt: skip
    whole = tmp_path / "whole"
    assert run(RLVRArgs(**settings, output_dir=str(whole)), small_model(format_weights), "small") == 0
    # The interrupted run: its state on disk after step 2 (checkpoint-2), nothing after it.
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for path in (cut / "checkpoint-4", cut / "evaluator"):
        shutil.rmtree(path)
    (cut / "results.json").unlink()
    args = RLVRArgs(**settings, output_dir=str(cut), resume=True)
    checkpoint = prepare_output_dir(args)
    assert checkpoint == cut / "checkpoint-2"
    assert run(args, small_model(format_weights), "small", checkpoint) == 0

    a = load_file(whole / "evaluator" / "adapter_model.safetensors")
    b = load_file(cut / "evaluator" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["curriculum/stage"] for r in metrics(cut)] == [1.0, 1.0, 2.0, 2.0]
    assert [r["step"] for r in metrics(cut)] == [1, 2, 3, 4]  # the redone steps replace, not repeat, their lines
    assert [r["reward"] for r in metrics(cut)] == [r["reward"] for r in metrics(whole)]


def test_all_zero_rewards_stop_the_run_after_n_steps(tmp_path, small_model):
    out = tmp_path / "run"  # untrained random weights never answer in the format: every reward is 0
    args = RLVRArgs(**{**SMALL_RUN, "max_bad_reward_steps": 2}, max_steps=5, curriculum_threshold=None,
                    save_steps=10, output_dir=str(out))  # fmt: skip
    assert run(args, small_model(), "random") == 1
    assert [r["health/bad_reward_steps"] for r in metrics(out)] == [1.0, 2.0]  # stopped after step 2, not before
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "stopped" and "all zero for 2 steps" in results["message"]
    assert not (out / "evaluator").exists()


def test_curriculum_data_serves_each_step_from_its_stage(tmp_path):
    items = [item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",))]
    pairs = build_pairs(LiteralRenderer(), items, tmp_path / "pairs", PairSettings(model_id="r"))
    state = CurriculumState(first_stage2_step=3, reason="step", decided_at=0)
    data = CurriculumData(pairs, RLVRArgs().templates(), prompts_per_step=2, seed=0, state=state)
    dataset = data.dataset(max_steps=4)
    assert len(dataset) == 8
    rows = [dataset[slot] for slot in range(8)]
    assert [r["stage"] for r in rows] == [1, 1, 1, 1, 2, 2, 2, 2]  # slots 0-3: steps 1-2; slots 4-7: steps 3-4
    by_id = {p.id: p for p in pairs.pairs}
    for row in rows:
        pair = by_id[row["pair_id"]]
        assert row["solution"] == pair.answer and row["stage"] == pair.stage
        assert [m["role"] for m in row["prompt"]] == ["user"] and pair.prompt in row["prompt"][0]["content"]
        first, second = pairs.images(pair)
        assert [im.tobytes() for im in row["images"]] == [first.tobytes(), second.tobytes()]
    assert data.last_step_read == 4


def first_scene(pair, item):
    """The scene `LiteralRenderer` draws first in an instruction pair: the naive concatenation's prompt (the words in
    front of it are not literal), else the literal text itself."""
    if pair.good_first:
        return parse_scene(pair.good_text)
    return parse_scene(item.prompt if pair.bad_kind == "naive" else pair.bad_text)


def test_the_checklist_reward_reads_the_oracles_checklist_of_the_first_image(tmp_path):
    items = [item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",))]
    pairs = build_pairs(LiteralRenderer(), items, tmp_path / "pairs", PairSettings(model_id="r"))
    checklist_of = oracle_checklists(pairs, items)
    by_id = {item.id: item for item in items}
    for pair in pairs.pairs:
        if pair.stage == 1:
            assert checklist_of(pair) is None
            continue
        expected = Checklist.of(first_scene(pair, by_id[pair.item_id]), by_id[pair.item_id], wholes=True)
        assert checklist_of(pair) == expected and expected.passed == (pair.answer == "Yes")

    state = CurriculumState(first_stage2_step=1, reason="step", decided_at=0)
    plain = CurriculumData(pairs, RLVRArgs().templates(), prompts_per_step=2, seed=0, state=state)
    with_checklists = CurriculumData(pairs, RLVRArgs().templates(), 2, 0, state, checklist_of)
    assert "checklist" not in plain.row(0) and with_checklists.row(0)["checklist"] is not None
    assert RLVRArgs().rewards()[1] == [1.0, 1.0] and len(RLVRArgs().rewards()[0]) == 2
    assert RLVRArgs(checklist_weight=0.5).rewards()[1] == [1.0, 1.0, 0.5]
    with pytest.raises(SeerError, match="needs items with a spec"):
        oracle_checklists(pairs, [dataclasses.replace(items[0], spec=None)])


def test_a_run_with_the_checklist_reward_passes_the_checklists_through_trl(tmp_path, format_weights, small_model):
    """The fitted answers ("<think> the first image </think> ...") never describe the image as the oracle does, so
    the checklist reward is 0 throughout; what is checked is that TRL hands the rows' checklists to it and logs it."""
    out = tmp_path / "run"
    args = RLVRArgs(**SMALL_RUN, max_steps=2, curriculum_switch_step=1, curriculum_threshold=None, checklist_weight=1.0,
                    output_dir=str(out))  # fmt: skip
    assert run(args, small_model(format_weights), "small") == 0
    rows = metrics(out)
    assert [r["curriculum/stage"] for r in rows] == [1.0, 2.0]
    assert [r["rewards/checklist_reward/mean"] for r in rows] == [0.0, 0.0]


def test_a_response_prefix_reaches_trls_prompts_and_its_rewards(tmp_path, format_weights, small_model):
    """The model was fitted to answer "<think> the first image </think> <answer> Yes|No </answer>". Given that
    answer's start in the prompt, it writes the rest, which scores as well-formed only once joined to the prefix: a
    prompt without the prefix (or rewards reading the rest alone) would score about zero."""
    out = tmp_path / "run"
    args = RLVRArgs(**SMALL_RUN, max_steps=1, curriculum_switch_step=None, curriculum_threshold=None,
                    response_prefix="<think> the first image", output_dir=str(out))  # fmt: skip
    assert run(args, small_model(format_weights), "small") == 0
    assert metrics(out)[0]["rewards/format_reward/mean"] >= 0.75


def test_trl_renders_the_two_image_prompt_exactly_as_the_model_formats_it(small_model):
    umm = small_model()
    text = RLVRArgs().prompt_question.format(prompt="a large red circle at the center on a white background")
    image = render(random_scene(random.Random(0)))
    messages = prepare_multimodal_messages([{"role": "user", "content": text}], images=[image, image])
    rendered = umm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == umm.format_prompt(text, num_images=2)
    assert rendered.count("<image_placeholder>") == 2


def test_output_dir_rules(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    with pytest.raises(SeerError, match="not empty; pass --resume .* or --overwrite"):
        prepare_output_dir(RLVRArgs(output_dir=str(out)))
    with pytest.raises(SeerError, match="no complete checkpoint"):
        prepare_output_dir(RLVRArgs(output_dir=str(out), resume=True))
    # --overwrite removes our earlier results (checkpoints first of all) and keeps the pair cache
    for name in ("checkpoint-5", "evaluator", "pairs/train-abc"):
        (out / name).mkdir(parents=True)
    (out / "metrics.jsonl").write_text("")
    assert prepare_output_dir(RLVRArgs(output_dir=str(out), overwrite=True)) is None
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "pairs"]
    # a checkpoint counts only when complete (TRL's state and our curriculum file)
    (out / "checkpoint-7").mkdir()
    (out / "checkpoint-7" / "trainer_state.json").write_text("{}")
    assert latest_checkpoint(out) is None
    (out / "checkpoint-7" / "curriculum.json").write_text("{}")
    assert latest_checkpoint(out) == out / "checkpoint-7"
    # a resumed run must use the configuration of the interrupted one
    (out / "config.yaml").write_text(yaml.safe_dump({**vars(RLVRArgs(output_dir=str(out))), "learning_rate": 0.1}))
    with pytest.raises(SeerError, match="key 'learning_rate': the interrupted run used 0.1"):
        prepare_output_dir(RLVRArgs(output_dir=str(out), resume=True))


def test_cli_refuses_a_non_empty_output_dir_with_one_line(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    code = cli_main(["rlvr", "--config", str(RECIPES / "shapeworld-tiny.yaml"), "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--overwrite" in err


@pytest.mark.parametrize("recipe, backend", [("shapeworld-tiny", "janus"), ("janus-pro-1b", "janus"),
                                             ("harmon-1.5b", "harmon")])  # fmt: skip
def test_recipes_parse(recipe, backend):
    (args,) = parse(["--config", str(RECIPES / f"{recipe}.yaml")], ARG_TYPES)
    assert args.reward_weights == [1.0, 1.0] and args.beta > 0 and args.backend == backend


def test_the_embedded_recipes_answer_budget_holds_the_oracles_checklist_for_every_default_gold_image():
    """The judge writes its checklist (seer.worlds.shapeworld.checklist) before the verdict; an answer cut off at
    `max_completion_length` has none, so it is wrong in RLVR and P(Yes) = 0 in RLMT. The longest such answer among
    the default items' gold images (a compound layout and a palette on three objects) must fit, with the EOS."""
    from transformers import PreTrainedTokenizerFast

    from seer.data.build import generate_sets
    from seer.embedded import EMBEDDED_MODEL_DIR

    (args,) = parse(["--config", str(RECIPES / "shapeworld-tiny.yaml")], ARG_TYPES)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(EMBEDDED_MODEL_DIR)
    prefix = len(tokenizer(args.response_prefix, add_special_tokens=False).input_ids)
    train, evaluation = generate_sets(seed=0, n_train_per_cell=25, n_eval_per_cell=25)
    longest = 0
    for item in train + evaluation:
        checklist = Checklist.of(parse_scene(item.gold), item, wholes=True)
        text = checklist.answer()
        assert first_error(text, checklist) == "right", item.id  # the answer the checklist's own reader expects
        answer = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in answer, item.id
        longest = max(longest, len(answer) - prefix + 1)
    assert 160 < longest <= args.max_completion_length  # 160, the budget before, cut some of them off


# ---- the backend key and the shared loader (seer.models.load_umm) ----


def test_the_loader_builds_a_harmon_tiny_shape_with_the_worlds_words_and_the_seed():
    from seer.models import load_umm
    from seer.models.harmon import HarmonUMM
    from seer.train import rlmt

    umm, model_id = load_umm("harmon", None, "harmon-tiny", "float32", "cpu", shape_seed=3)
    assert isinstance(umm, HarmonUMM) and model_id == "shape:harmon-tiny:seed=3:float32"
    (tiny,) = parse(["--config", str(RECIPES / "shapeworld-tiny.yaml")], ARG_TYPES)
    check_vocabulary(umm.tokenizer, tiny.templates())  # ShapeWorld's words, not <unk>
    # Both stages load through it: the same arguments give the same model (RLVR seeds a shape with its seed, RLMT
    # with the RLVR run's).
    via_rlvr, rlvr_id = load_model(RLVRArgs(backend="harmon", model_shape="harmon-tiny", seed=3))
    via_rlmt, rlmt_id = rlmt.load_model(rlmt.RLMTArgs(backend="harmon", model_shape="harmon-tiny"), shape_seed=3)
    assert rlvr_id == rlmt_id == model_id
    for other in (via_rlvr, via_rlmt):
        a, b = umm.harmon.state_dict(), other.harmon.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other_seed, _ = load_umm("harmon", None, "harmon-tiny", "float32", "cpu", shape_seed=4)
    name = "llm.model.embed_tokens.weight"
    assert not torch.equal(umm.harmon.state_dict()[name], other_seed.harmon.state_dict()[name])


def test_cli_trains_a_harmon_tiny_evaluator(tmp_path, recwarn):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("backend: harmon\nmodel_shape: harmon-tiny\nheldout_items: 0\ncurriculum_threshold: null\n")
    out = tmp_path / "run"
    code = cli_main(["rlvr", "--config", str(recipe), "--pair_generator", "renderer", "--max_steps", "2",
                     "--max_train_items", "6", "--prompts_per_step", "2", "--num_generations", "2",
                     "--max_completion_length", "8", "--output_dir", str(out)])  # fmt: skip
    assert code == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["backend"] == "harmon"
    weights = load_file(out / "evaluator" / "adapter_model.safetensors")
    assert weights and all(".llm.model.layers." in name for name in weights)  # Harmon's LLM attention was wrapped
    assert json.loads((out / "results.json").read_text())["steps"] == 2
    # TRL's and PEFT's use of a deprecated transformers property is hidden from the command's output
    assert not [w for w in recwarn if "is_gradient_checkpointing" in str(w.message)]


def test_bad_backends_are_one_line_errors(tmp_path):
    from seer.models import load_umm

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("backend: flamingo\n")
    for argv in (["--backend", "flamingo"], ["--config", str(recipe)]):
        with pytest.raises(SeerError) as error:
            parse(argv, ARG_TYPES, prog="seer rlvr")
        assert "backend" in str(error.value) and "flamingo" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(SeerError, match=r"^backend 'flamingo': expected one of \['harmon', 'janus'\]$"):
        load_umm("flamingo", None, None, "float32", "cpu")
    with pytest.raises(SeerError, match="^key 'model': the harmon backend needs a model directory or a model_shape"):
        load_model(RLVRArgs(backend="harmon"))
    with pytest.raises(SeerError, match="^model shape 'harmon-tiny': expected one of"):
        load_model(RLVRArgs(backend="janus", model_shape="harmon-tiny"))


def test_tiny_recipe_speaks_the_tiny_vocabulary_and_janus_recipe_the_papers_prompt(small_model):
    (tiny,) = parse(["--config", str(RECIPES / "shapeworld-tiny.yaml")], ARG_TYPES)
    check_vocabulary(small_model().tokenizer, tiny.templates())  # no word of it reads as <unk>
    (janus,) = parse(["--config", str(RECIPES / "janus-pro-1b.yaml")], ARG_TYPES)
    # verbatim from the authors' code (seer-anonymous open_r1/grpo_rec.py), as reference/paper.md §3 quotes it
    assert janus.system_prompt == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
        "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
        "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
        "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>"
    )
    assert janus.answer_suffix == (
        "First output the thinking process in <think> </think> tags and then output the final answer with only "
        "'Yes' or 'No' in <answer> </answer> tags."
    )
    with pytest.raises(SeerError, match="recipe key 'prompt_question': word 'Does' is not in the model's vocabulary"):
        check_vocabulary(small_model().tokenizer, janus.templates())


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--prompt_question", "does it match ?"], "prompt_question: expected the placeholders ['prompt']"),
        (["--reward_weights", "1.0"], "reward_weights: expected 2 weights"),
        (["--checklist_weight", "-1"], "checklist_weight: expected >= 0"),
        (["--stage2_failures", "lazy"], "stage2_failures"),
        (["--num_generations", "1"], "num_generations: expected an integer >= 2"),
        (["--resume", "true", "--overwrite", "true"], "resume and overwrite"),
        (["--curriculum_threshold", "1.5"], "curriculum_threshold"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_the_key(argv, needle):
    with pytest.raises(SeerError) as error:
        parse(argv, ARG_TYPES, prog="seer rlvr")
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_gradient_checkpointing_recomputes_the_same_step_without_deprecation_warnings(
    tmp_path, format_weights, small_model, recwarn
):  # fmt: skip
    """Checkpointed activations are recomputed, not approximated: one step with it on ends with the adapter of the
    same step with it off, and the flag reaches transformers' TrainingArguments under its current name (no
    FutureWarning)."""
    adapters = {}
    for on in (False, True):
        out = tmp_path / f"gc-{on}"
        umm = small_model(format_weights)
        args = RLVRArgs(**SMALL_RUN, max_steps=1, save_steps=1, gradient_checkpointing=on, output_dir=str(out))
        assert run(args, umm, "small") == 0
        assert umm.janus.is_activation_checkpointing == on
        adapters[on] = load_file(out / "checkpoint-1" / "evaluator" / "adapter_model.safetensors")
    assert adapters[False].keys() == adapters[True].keys()
    assert all(torch.allclose(adapters[False][k], adapters[True][k], atol=1e-6) for k in adapters[False])
    # TrainingArguments' own warning; TRL and PEFT still call the model's deprecated checkpointing methods themselves
    assert not [w for w in recwarn if str(w.message).startswith("`gradient_checkpointing` is deprecated")]
