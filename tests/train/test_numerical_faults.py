"""Numerical faults in `seer pretrain`, injected: a NaN gradient skips its step (no update, logged); repeated ones
stop the run with exit status 1 and its last good checkpoint intact.

NaN is injected by wrapping the VQ stage's objective: on the chosen forward calls a backward hook turns the
gradient of the (finite) loss into NaN, so the decision must come from the gradient, not from the loss value.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from seer.cli import main as cli_main
from seer.train import checkpoint as ckpt
from seer.train.vq import VQObjective

# The VQ stage only, a few tiny steps, a checkpoint after every step (the debug recipe, made smaller still).
TINY = ["--config", "recipes/pretrain/debug_cpu.yaml", "--log_steps", "1", "--save_steps", "1",
        "--save_total_limit", "10", "--lm_steps", "0", "--vq_eval_scenes", "1", "--vq_steps", "3"]  # fmt: skip


@pytest.fixture
def poison(monkeypatch):
    """poison({2, 3}) makes the gradient of forward calls 2 and 3 (1-based) NaN."""
    calls = {"n": 0, "bad": set()}
    forward = VQObjective.forward

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] in calls["bad"]:
            out["loss"].register_hook(lambda grad: grad * float("nan"))
        return out

    monkeypatch.setattr(VQObjective, "forward", poisoned)
    return lambda steps: calls["bad"].update(steps)


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out, step):
    return load_file(out / "checkpoints" / ckpt.checkpoint_name(step) / "model.safetensors")


def test_a_nan_gradient_skips_its_step_and_is_logged(tmp_path, poison, capsys):
    poison({2})
    out = tmp_path / "run"
    assert cli_main(["pretrain", *TINY, "--output_dir", str(out)]) == 0
    assert "step 2: non-finite gradient" in capsys.readouterr().out
    skipped = [r for r in records(out) if r.get("skipped_nonfinite")]
    assert [(r["step"], r["nonfinite_loss"]) for r in skipped] == [(2, False)]  # the loss was finite, its grad not
    # Step 2 changed nothing; step 3 trained again; nothing non-finite reached the weights.
    one, two, three = (weights(out, s) for s in (1, 2, 3))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert any(not torch.equal(two[k], three[k]) for k in two)
    assert all(torch.isfinite(t).all() for t in three.values())
    logged = [r["step"] for r in records(out) if "loss" in r]
    assert logged == [1, 3]  # a skipped step logs no loss


def test_repeated_nan_gradients_stop_the_run_with_the_last_good_checkpoint(tmp_path, poison, capsys):
    poison({2, 3})
    out = tmp_path / "run"
    code = cli_main(["pretrain", *TINY, "--max_nonfinite_steps", "2", "--output_dir", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 steps in a row" in err and "non-finite gradient" in err and "--resume" in err
    # Step 2 was skipped, so its checkpoint holds step 1's weights; the stop at step 3 saves nothing.
    assert ckpt.latest_checkpoint(out / "checkpoints").name == ckpt.checkpoint_name(2)
    assert not (out / "model").exists()  # the final model is never written from a stopped run
    one, two = weights(out, 1), weights(out, 2)
    assert all(torch.equal(one[k], two[k]) and torch.isfinite(two[k]).all() for k in one)
