"""Numerical faults in the GRPO stages, injected into a small `seer rlvr` run: a step whose loss or gradient is NaN
updates nothing and is logged; `max_nonfinite_steps` of them in a row stop the run (exit 1) with the last good
checkpoint intact. The guard is shared with `seer rlmt` (`seer.train.grpo.build_grpo_trainer`).

NaN is injected by a forward hook on the policy (the PEFT module TRL trains): on the chosen steps' training
forward (the one with autograd on; sampling and reference passes run without) it either makes the completion
log-probs NaN (so the loss is NaN) or leaves them finite and turns their gradient into NaN (so only the decision
from the gradients can catch it).
"""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState

from seer.train import rlmt
from seer.train.nonfinite import NonFiniteGuard
from seer.train.rlvr import RLVRArgs, latest_checkpoint, run

# 2 questions x 4 answers per step on instruction pairs (the fitted model's format), a checkpoint after every step.
SMALL_RUN = dict(
    pair_generator="renderer", max_train_items=6, heldout_items=0, prompts_per_step=2, num_generations=4,
    max_completion_length=12, learning_rate=1e-2, curriculum_switch_step=0, curriculum_threshold=None, save_steps=1,
)  # fmt: skip


def poison(umm, faults):
    """Make the training forward of step s (1-based) faulty as `faults[s]` says: "loss" or "gradient"."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        if not torch.is_grad_enabled():  # generation and the reference's log-probs
            return output
        calls["n"] += 1  # one training forward per step: all of a step's 8 answers fit one micro-batch
        fault = faults.get(calls["n"])
        if fault == "loss":
            output.log_probs = output.log_probs * float("nan")
        elif fault == "gradient":
            output.log_probs.register_hook(lambda grad: grad * float("nan"))
        return output

    umm.module.register_forward_hook(hook)
    return umm


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def adapter(out, step):
    return load_file(out / f"checkpoint-{step}" / "evaluator" / "adapter_model.safetensors")


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_nan_loss_skips_its_step_and_leaves_adapter_and_optimizer_unchanged(tmp_path, formatted_janus, capfd):
    out = tmp_path / "run"
    umm = poison(formatted_janus(), {2: "loss"})
    assert run(RLVRArgs(**SMALL_RUN, max_steps=3, output_dir=str(out)), umm, "small") == 0
    assert "warning: step 2: non-finite loss; update skipped" in capfd.readouterr().err

    rows = metrics(out)
    assert [r["health/nonfinite_steps"] for r in rows] == [0.0, 1.0, 0.0]
    one, two, three = (adapter(out, s) for s in (1, 2, 3))
    assert same(one, two)  # step 2 changed nothing ...
    assert not same(two, three)  # ... and step 3 trained again
    assert all(torch.isfinite(t).all() for t in three.values())
    # AdamW's moments were not touched either (a zeroed gradient would still have decayed them)
    moments = [torch.load(out / f"checkpoint-{s}" / "optimizer.pt", weights_only=True)["state"] for s in (1, 2)]
    assert moments[0].keys() == moments[1].keys() and moments[0]
    for key in moments[0]:
        assert all(torch.equal(moments[0][key][k], moments[1][key][k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert json.loads((out / "results.json").read_text())["status"] == "completed"


def test_repeated_nan_gradients_stop_the_run_with_the_last_good_checkpoint(tmp_path, formatted_janus, capfd):
    out = tmp_path / "run"
    umm = poison(formatted_janus(), {2: "gradient", 3: "gradient"})
    args = RLVRArgs(**SMALL_RUN, max_steps=5, max_nonfinite_steps=2, output_dir=str(out))
    assert run(args, umm, "small") == 1
    err = capfd.readouterr().err
    assert "warning: step 2: non-finite gradient" in err  # the loss itself was finite
    message = "non-finite loss or gradient for 2 steps in a row (steps 2-3), so training stopped"
    assert message in err and err.count(message) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "stopped" and message in results["message"] and results["steps"] == 3

    assert [r["health/nonfinite_steps"] for r in metrics(out)] == [0.0, 1.0, 2.0]
    # The stopping step writes no checkpoint; the newest one (step 2, skipped) holds step 1's good adapter.
    assert latest_checkpoint(out) == out / "checkpoint-2" and not (out / "checkpoint-3").exists()
    assert same(adapter(out, 1), adapter(out, 2))
    assert all(torch.isfinite(t).all() for t in adapter(out, 2).values())
    assert not (out / "evaluator").exists()  # no final adapter from a stopped run


def test_rlmt_stops_the_same_way(tmp_path, formatted_janus, write_rlvr_run, capfd):
    evaluator = write_rlvr_run(tmp_path / "rlvr", formatted_janus())
    out = tmp_path / "run"
    args = rlmt.RLMTArgs(generator="renderer", max_train_items=6, prompts_per_step=2, num_generations=4,
                         max_completion_length=24, judge_max_new_tokens=10, fidelity_samples=0,
                         evaluator=str(evaluator), max_steps=3, save_steps=1, max_nonfinite_steps=1,
                         output_dir=str(out))  # fmt: skip
    assert rlmt.run(args, poison(formatted_janus(), {2: "loss"}), "small") == 1
    message = "non-finite loss or gradient for 1 steps in a row (steps 2-2), so training stopped"
    assert message in capfd.readouterr().err
    assert json.loads((out / "results.json").read_text())["message"].startswith(message)
    assert rlmt.latest_checkpoint(out) == out / "checkpoint-1" and not (out / "reprompter").exists()


def test_the_guard_skips_bad_steps_and_stops_only_after_enough_in_a_row(tmp_path):
    """The callback alone, on a linear layer: grads dropped on a bad step, the run of bad steps reset by a good one."""
    guard = NonFiniteGuard(max_nonfinite_steps=2)
    layer = torch.nn.Linear(2, 1)
    args, state = SimpleNamespace(output_dir=str(tmp_path)), TrainerState()

    def step(loss_value, grad_value):
        """One step through the guard's hooks, every step a save step; (update skipped?, the control after it)."""
        control = TrainerControl()
        guard.on_step_begin(args, state, control)
        layer.weight.grad, layer.bias.grad = torch.full((1, 2), grad_value), torch.full((1,), 1.0)
        guard.observe_loss(torch.tensor(loss_value))
        guard.on_pre_optimizer_step(args, state, control, model=layer)
        state.global_step += 1
        control.should_save = True  # what the Trainer's flow callback, run before ours, asks on a save step
        guard.on_step_end(args, state, control)
        return layer.weight.grad is None, control

    skipped, control = step(1.0, 1.0)  # a good step: gradients kept, checkpoint written
    assert not skipped and control.should_save and guard.in_a_row == 0
    skipped, control = step(float("nan"), 1.0)  # NaN loss, finite gradients: skipped all the same
    assert skipped and layer.bias.grad is None and guard.in_a_row == 1
    assert control.should_save and not control.should_training_stop  # a skipped step's checkpoint is still good
    assert not step(1.0, 1.0)[0] and guard.in_a_row == 0  # a good step ends the run of bad ones
    assert step(1.0, float("inf"))[0] and guard.stop_message is None
    skipped, control = step(1.0, float("nan"))
    assert skipped and control.should_training_stop and not control.should_save
    assert "for 2 steps in a row (steps 4-5)" in guard.stop_message
    with pytest.raises(ValueError, match="max_nonfinite_steps"):
        NonFiniteGuard(max_nonfinite_steps=0)
