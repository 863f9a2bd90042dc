"""`seer rlmt` end to end on a small random-weight Janus, plus its pieces: the reward (seed sharing, malformed
answers, order averaging, judge-oracle agreement), the rows TRL reads, the RLVR run it reads, arguments and recipes.

The model: a small Janus shape whose random weights are fitted for ~4 s to answer both roles' questions in the
format: reprompt questions with one of three literal prompts, two-image questions with a random Yes/No. That gives the
policy valid descriptors and the judge answers that reach ``<answer>``, so rewards vary within a group and training
moves the adapter. Images are exact renders (``generator: renderer``), so the oracle can read them.
"""

import json
import random
import shutil
from contextlib import nullcontext

import pytest
import torch
import yaml
from safetensors.torch import load_file

from seer.config import parse, save_config
from seer.data.build import generate_sets
from seer.data.pairs import LiteralRenderer, QuestionTemplates
from seer.errors import SeerError
from seer.formats import format_answer, naive_concatenation
from seer.models.adapters import EVALUATOR, REPROMPTER, adapter_parameters
from seer.rl.judge import JudgeResult
from seer.rl.reprompt import REPROMPT_TEMPLATE
from seer.train.rlmt import (
    ARG_TYPES,
    PYesReward,
    RLMTArgs,
    build_rows,
    check_template_vocabulary,
    prepare_output_dir,
    read_evaluator_run,
    resolve_model_keys,
    rollout_seed,
    run,
)
from seer.train.rlvr import INSTRUCTION_QUESTION, RLVRArgs
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.scene import random_scene

RECIPES = __import__("pathlib").Path(__file__).resolve().parents[2] / "recipes" / "rlmt"
SMALL_RUN = dict(
    generator="renderer", max_train_items=6, prompts_per_step=2, num_generations=4, max_completion_length=24,
    judge_max_new_tokens=10, learning_rate=1e-2, temperature=0.5, fidelity_samples=4, judge_batch_size=16,
)  # fmt: skip
ITEMS = generate_sets(0, 25, 1)[0]


# ---- the reward, with stubs ----


class RecordingGenerator:
    """Draws exact renders and records every (text, seed) it was asked for."""

    def __init__(self):
        self.calls = []
        self.renderer = LiteralRenderer(32)

    def no_adapter(self):
        return nullcontext()

    def generate_images(self, prompts, *, seeds=None, **kwargs):
        self.calls += list(zip(prompts, seeds))
        return self.renderer.generate_images(prompts)


def stub_judge(p_of_first):
    """A judge whose P(Yes) depends on which image is first: `p_of_first(first_image_is_ours)`."""
    calls = []

    def judge(firsts, seconds, questions):
        calls.append((list(firsts), list(seconds), list(questions)))
        return JudgeResult([p_of_first(f) for f in firsts], ["t"] * len(firsts), [True] * len(firsts))

    judge.calls = calls
    return judge


def answer(descriptor):
    return [{"role": "assistant", "content": format_answer("x", descriptor)}]


def test_policy_and_naive_images_of_an_item_share_one_seed_per_step():
    a, b = ITEMS[0], ITEMS[1]
    generator = RecordingGenerator()
    reward = PYesReward(generator, stub_judge(lambda img: 0.5), {a.id: a, b.id: b}, RLVRArgs().templates(),
                        RLMTArgs(seed=3, fidelity_samples=0))  # fmt: skip
    other = describe(random_scene(random.Random(1)))
    completions = [answer(a.gold), answer(other), answer(a.gold), [{"role": "assistant", "content": "junk"}],
                   answer(b.gold), answer(other), answer(b.gold), answer(b.gold)]  # fmt: skip
    item_ids, steps = [a.id] * 4 + [b.id] * 4, [7] * 8
    rewards = reward(completions, item_id=item_ids, step=steps)

    seeds = {text: seed for text, seed in generator.calls}
    naive_a, naive_b = (naive_concatenation(i.instruction, i.prompt) for i in (a, b))
    # the naive image once per item, each distinct descriptor once per item (a repeated one is not redrawn)
    assert [t for t, _ in generator.calls] == [naive_a, naive_b, a.gold, other, b.gold, other]
    seed_a, seed_b = rollout_seed(3, a.id, 7), rollout_seed(3, b.id, 7)
    assert [s for _, s in generator.calls] == [seed_a, seed_b, seed_a, seed_a, seed_b, seed_b]
    assert seed_a != seed_b and rollout_seed(3, a.id, 8) != seed_a and rollout_seed(4, a.id, 7) != seed_a
    assert seeds[naive_a] == seed_a  # policy and baseline of one item: the same noise
    assert rewards == [0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5]  # the malformed answer scores 0
    assert reward.last_metrics["rlmt/malformed"] == 1 / 8 and reward.last_metrics["rlmt/valid"] == 7 / 8


@pytest.mark.parametrize("both_orders, expected", [(True, (0.9 + 1 - 0.3) / 2), (False, 0.9)])
def test_reward_averages_both_orders_or_takes_ours_first(both_orders, expected):
    a = ITEMS[0]
    naive_image = LiteralRenderer(32).generate_images([naive_concatenation(a.instruction, a.prompt)]).images[0]
    judge = stub_judge(lambda img: 0.3 if img.tobytes() == naive_image.tobytes() else 0.9)
    reward = PYesReward(RecordingGenerator(), judge, {a.id: a}, RLVRArgs().templates(),
                        RLMTArgs(both_orders=both_orders, fidelity_samples=0))  # fmt: skip
    assert reward([answer(a.gold)] * 2, item_id=[a.id] * 2, step=[1, 1]) == pytest.approx([expected] * 2)
    firsts, seconds, questions = judge.calls[0]
    assert len(firsts) == (2 if both_orders else 1)  # one distinct descriptor, judged once per order
    assert seconds[0].tobytes() == naive_image.tobytes()
    assert questions[0] == INSTRUCTION_QUESTION.format(instruction=a.instruction, prompt=a.prompt)


@pytest.mark.parametrize("p, agreement, prefers_failing", [(0.9, 1.0, 1.0), (0.1, 0.0, 0.0)])
def test_agreement_counts_pairs_the_oracle_decides(p, agreement, prefers_failing):
    item = next(i for i in ITEMS if i.gold is not None)
    log = {}
    reward = PYesReward(RecordingGenerator(), stub_judge(lambda img: p), {item.id: item}, RLVRArgs().templates(),
                        RLMTArgs(both_orders=False, fidelity_samples=4))  # fmt: skip
    reward([answer(item.gold), answer(item.prompt)], item_id=[item.id] * 2, step=[1, 1],
           log_metric=lambda name, value: log.__setitem__(name, value))  # fmt: skip
    # the gold passes and the naive image (the prompt drawn, the instruction ignored) fails; the prompt itself fails
    # as well, so only the gold's pair is decisive
    assert log["fidelity/oracle_pass"] == 0.5 and log["fidelity/naive_pass"] == 0.0
    assert log["fidelity/decisive"] == 0.5 and log["fidelity/agreement"] == agreement
    # of the rollouts that fail the oracle (the prompt's), the fraction the judge rewards above 0.5
    assert log["fidelity/judge_prefers_failing"] == prefers_failing


def test_rows_are_in_step_order_and_each_pass_is_a_permutation():
    items = ITEMS[:5]
    rows = build_rows(items, REPROMPT_TEMPLATE, prompts_per_step=2, max_steps=5, seed=0)
    assert [r["step"] for r in rows] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert sorted(r["item_id"] for r in rows[:5]) == sorted(i.id for i in items)
    assert sorted(r["item_id"] for r in rows[5:]) == sorted(i.id for i in items)
    assert rows == build_rows(items, REPROMPT_TEMPLATE, prompts_per_step=2, max_steps=5, seed=0)
    first = next(i for i in items if i.id == rows[0]["item_id"])
    assert rows[0]["prompt"] == [{"role": "user", "content": REPROMPT_TEMPLATE.format(
        prompt=first.prompt, instruction=first.instruction)}]  # fmt: skip


# ---- the RLVR run it reads ----


def test_read_evaluator_run_and_its_errors(tmp_path, small_janus, fake_rlvr_run):
    run_dir = fake_rlvr_run(tmp_path / "rlvr", small_janus(), model_shape="tiny-test")
    judge = read_evaluator_run(run_dir)
    assert judge.templates == RLVRArgs().templates() and judge.max_new_tokens == 10
    shutil.copytree(run_dir / EVALUATOR, run_dir / "checkpoint-5" / EVALUATOR)
    assert read_evaluator_run(run_dir / "checkpoint-5").config_path == run_dir / "config.yaml"
    with pytest.raises(SeerError, match="no evaluator adapter .*key 'evaluator'"):
        read_evaluator_run(tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    del config["instruction_question"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SeerError, match="key 'instruction_question' is missing"):
        read_evaluator_run(run_dir)
    # the model: the RLVR run's when ours is null; another one is an error
    config["instruction_question"] = INSTRUCTION_QUESTION
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    args = RLMTArgs()
    resolve_model_keys(args, read_evaluator_run(run_dir))
    assert args.model_shape == "tiny-test" and args.model is None
    with pytest.raises(SeerError, match="key 'model': 'other', but the evaluator .* was trained on model None"):
        resolve_model_keys(RLMTArgs(model="other"), read_evaluator_run(run_dir))
    # the backend: the RLVR run's (a run without the key is a janus one); another one is a one-line error
    with pytest.raises(SeerError, match="^key 'backend': 'harmon', but the evaluator .* backend 'janus'$"):
        resolve_model_keys(RLMTArgs(backend="harmon"), read_evaluator_run(run_dir))
    config["backend"] = "harmon"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    args = RLMTArgs(backend="harmon")
    resolve_model_keys(args, read_evaluator_run(run_dir))
    assert args.model_shape == "tiny-test"


# ---- end to end on a small Janus ----


@pytest.fixture
def fitted(formatted_janus):
    """A factory of the small Janus fitted to both roles' answer formats (tests/train/conftest.py)."""
    return formatted_janus


def base_weights(umm):
    state = umm.janus.state_dict()
    return {n.replace(".base_layer", ""): t.detach().clone() for n, t in state.items() if ".lora_" not in n}


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_step_run_trains_the_reprompter_and_leaves_base_and_evaluator_bit_identical(
    tmp_path, fitted, fake_rlvr_run
):
    rlvr = fake_rlvr_run(tmp_path / "rlvr", fitted())
    evaluator = load_file(rlvr / EVALUATOR / "adapter_model.safetensors")
    out = tmp_path / "run"
    umm = fitted()
    before = base_weights(umm)
    args = RLMTArgs(
        **SMALL_RUN, evaluator=str(rlvr), init_from="evaluator", max_steps=2, save_steps=1, output_dir=str(out)
    )
    assert run(args, umm, "small") == 0

    assert same(base_weights(umm), before)
    assert not any(p.requires_grad for p in adapter_parameters(umm.module, EVALUATOR).values())  # still frozen
    umm.save_adapter(EVALUATOR, tmp_path / "evaluator-after")
    assert same(load_file(tmp_path / "evaluator-after" / "adapter_model.safetensors"), evaluator)
    trained = load_file(out / REPROMPTER / "adapter_model.safetensors")
    assert trained.keys() == evaluator.keys()  # init_from evaluator: the same adapter shape ...
    assert not same(trained, evaluator)  # ... moved by training
    assert not same(load_file(out / "checkpoint-1" / REPROMPTER / "adapter_model.safetensors"), trained)

    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0.0 < r["rlmt/valid"] and r["health/zero_variance_groups"] < 1.0 for r in rows)
    assert all("fidelity/oracle_pass" in r and "rlmt/malformed" in r and "rlmt/judge_no_answer" in r for r in rows)
    assert rows[0]["rlmt/judge_no_answer"] < 1.0  # the judge's answers reach <answer>: real P(Yes) values
    assert yaml.safe_load((out / "config.yaml").read_text())["evaluator"] == str(rlvr)
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "completed" and results["steps"] == 2 and results["init_from"] == "evaluator"


def test_resumed_run_ends_with_the_adapter_of_the_uninterrupted_run(tmp_path, fitted, fake_rlvr_run):
    rlvr = fake_rlvr_run(tmp_path / "rlvr", fitted())
    settings = dict(**SMALL_RUN, evaluator=str(rlvr), init_from="base", max_steps=4, save_steps=2)
    whole = tmp_path / "whole"
    assert run(RLMTArgs(**settings, output_dir=str(whole)), fitted(), "small") == 0
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for path in (cut / "checkpoint-4", cut / REPROMPTER):
        shutil.rmtree(path)
    (cut / "results.json").unlink()
    args = RLMTArgs(**settings, output_dir=str(cut), resume=True)
    checkpoint = prepare_output_dir(args)
    assert checkpoint == cut / "checkpoint-2"
    resumed = fitted()
    assert run(args, resumed, "small", checkpoint) == 0
    resumed.save_adapter(EVALUATOR, tmp_path / "evaluator-after")  # TRL reloads it from the checkpoint: unchanged
    assert same(load_file(tmp_path / "evaluator-after" / "adapter_model.safetensors"),
                load_file(rlvr / EVALUATOR / "adapter_model.safetensors"))  # fmt: skip
    a = load_file(whole / REPROMPTER / "adapter_model.safetensors")
    b = load_file(cut / REPROMPTER / "adapter_model.safetensors")
    assert same(a, b)
    assert [r["step"] for r in metrics(cut)] == [1, 2, 3, 4]
    assert [r["reward"] for r in metrics(cut)] == [r["reward"] for r in metrics(whole)]


# ---- arguments and recipes ----


@pytest.mark.parametrize("recipe", ["shapeworld-tiny", "janus-pro-1b", "harmon-1.5b"])
def test_recipes_parse(recipe):
    (args,) = parse(["--config", str(RECIPES / f"{recipe}.yaml")], ARG_TYPES)
    assert args.both_orders and args.beta > 0 and args.evaluator


def test_tiny_recipe_speaks_the_tiny_vocabulary(small_janus):
    (tiny,) = parse(["--config", str(RECIPES / "shapeworld-tiny.yaml")], ARG_TYPES)
    tokenizer = small_janus().tokenizer
    check_template_vocabulary(tokenizer, tiny.reprompt_template)
    (janus,) = parse(["--config", str(RECIPES / "janus-pro-1b.yaml")], ARG_TYPES)
    with pytest.raises(SeerError, match="recipe key 'reprompt_template': word 'Rewrite' is not in the model's vocab"):
        check_template_vocabulary(tokenizer, janus.reprompt_template)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--reprompt_template", "rewrite {prompt}"], "reprompt_template: expected the placeholders"),
        (["--num_generations", "1"], "num_generations: expected an integer >= 2"),
        (["--init_from", "scratch"], "init_from"),
        (["--resume", "true", "--overwrite", "true"], "resume and overwrite"),
        (["--model", "a", "--model_shape", "b"], "model and model_shape"),
        (["--fidelity_samples", "-1"], "fidelity_samples: expected an integer >= 0"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_the_key(argv, needle):
    with pytest.raises(SeerError) as error:
        parse(argv, ARG_TYPES, prog="seer rlmt")
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_output_dir_rules(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    with pytest.raises(SeerError, match="not empty; pass --resume .* or --overwrite"):
        prepare_output_dir(RLMTArgs(output_dir=str(out)))
    (out / "checkpoint-3").mkdir()
    (out / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(SeerError, match="no complete checkpoint"):  # rlmt.json is written last
        prepare_output_dir(RLMTArgs(output_dir=str(out), resume=True))
    assert prepare_output_dir(RLMTArgs(output_dir=str(out), overwrite=True)) is None
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_templates_of_the_judge_are_the_rlvr_runs(tmp_path, small_janus, fake_rlvr_run):
    run_dir = fake_rlvr_run(tmp_path / "rlvr", small_janus(), instruction_question="is it ? {instruction} {prompt}",
                            response_prefix="<think> the first")  # fmt: skip
    assert read_evaluator_run(run_dir).templates == QuestionTemplates(
        RLVRArgs().prompt_question, "is it ? {instruction} {prompt}", response_prefix="<think> the first"
    )
    # An RLVR run from before the key existed wrote no prefix: its judge is read without one.
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    del config["response_prefix"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_evaluator_run(run_dir).templates.response_prefix == ""


def test_seer_reprompt_renders_the_greedy_descriptor_with_the_frozen_generator(tmp_path, fitted, capsys):
    from seer.cli import main as cli_main

    umm = fitted()
    umm.save_pretrained(tmp_path / "model")
    run_dir = tmp_path / "rlmt"
    save_config(run_dir, RLMTArgs(model=str(tmp_path / "model"), max_completion_length=24))
    umm.add_adapter(REPROMPTER)
    umm.save_adapter(REPROMPTER, run_dir / REPROMPTER)
    item = ITEMS[0]
    argv = ["reprompt", "--adapter", str(run_dir), "--prompt", item.prompt, "--instruction", item.instruction,
            "--out", str(tmp_path / "img.png"), "--seed", "4"]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    descriptor = next(line for line in printed.splitlines() if line.startswith("descriptor: "))[12:]
    with umm.no_adapter():
        expected = umm.generate_images([descriptor], seeds=[4]).images[0]
    from PIL import Image

    assert Image.open(tmp_path / "img.png").convert("RGB").tobytes() == expected.tobytes()


def test_seer_reprompt_refuses_a_missing_adapter_with_one_line(tmp_path, capsys):
    from seer.cli import main as cli_main

    code = cli_main(["reprompt", "--adapter", str(tmp_path), "--prompt", "a", "--instruction", "b"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "key 'adapter'" in err


def test_the_oracle_judge_diagnostic_rewards_what_the_oracle_prefers():
    item = next(i for i in ITEMS if i.gold is not None)
    judge = stub_judge(lambda img: 0.0)
    reward = PYesReward(RecordingGenerator(), judge, {item.id: item}, RLVRArgs().templates(),
                        RLMTArgs(judge="oracle", fidelity_samples=0))  # fmt: skip
    # gold: only ours passes -> 1; the prompt itself: both fail -> 0.5; malformed -> 0
    rewards = reward([answer(item.gold), answer(item.prompt), [{"role": "assistant", "content": "x"}]],
                     item_id=[item.id] * 3, step=[1] * 3)  # fmt: skip
    assert rewards == [1.0, 0.5, 0.0] and judge.calls == []
