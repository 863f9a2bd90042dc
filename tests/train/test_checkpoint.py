"""Atomic checkpoints: round trip of every state, torn or incomplete folders ignored, keep-last-K, bad files."""

import json
import random

import numpy as np
import pytest
import torch

from seer.errors import SeerError
from seer.train import checkpoint as ckpt


def _trained(seed=0):
    """A small model, AdamW and a scheduler after one step (so the optimizer has state)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def _save(root, step, keep_last=10, **extra):
    model, optimizer, scheduler = _trained(step)
    return ckpt.save_checkpoint(
        root, step, model=model, optimizer=optimizer, scheduler=scheduler, state=extra, keep_last=keep_last
    )


def test_round_trip_restores_model_optimizer_scheduler_rng_and_state(tmp_path):
    model, optimizer, scheduler = _trained(0)
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    path = ckpt.save_checkpoint(
        tmp_path, 7, model=model, optimizer=optimizer, scheduler=scheduler, state={"stage": "lm", "data_position": 7}
    )
    after_save = (random.random(), float(np.random.rand()), torch.rand(1).item())

    fresh, fresh_opt, fresh_sched = _trained(1)  # different weights and optimizer state
    state = ckpt.load_checkpoint(path, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    assert state == {"step": 7, "stage": "lm", "data_position": 7}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(optimizer.state[p]["exp_avg_sq"], fresh_opt.state[q]["exp_avg_sq"])
    assert fresh_sched.state_dict()["last_epoch"] == scheduler.state_dict()["last_epoch"] == 1
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == after_save  # RNGs continue the same


def test_torn_staging_and_incomplete_checkpoints_are_never_picked(tmp_path):
    _save(tmp_path, 5)
    torn = tmp_path / ".staging-checkpoint-000009"  # a save killed half-way
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 10)
    incomplete = tmp_path / "checkpoint-000007"  # complete name, files missing (e.g. deleted by hand)
    incomplete.mkdir()
    (incomplete / "trainer_state.json").write_text('{"step": 7}')
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-000005"
    # The next save of step 9 clears the torn staging folder and lands complete.
    _save(tmp_path, 9)
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-000009"
    assert not torn.exists()


def test_a_crash_while_writing_leaves_the_previous_checkpoint_latest(tmp_path, monkeypatch):
    _save(tmp_path, 2)
    real_save = torch.save

    def dies_on_optimizer(obj, path, *a, **k):
        if str(path).endswith("optimizer.pt"):
            raise KeyboardInterrupt  # the process is killed mid-save
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", dies_on_optimizer)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 4)
    assert not (tmp_path / "checkpoint-000004").exists()
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-000002"


def test_keep_last_and_resaving_a_step(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-000003", "checkpoint-000004"]
    _save(tmp_path, 4, keep_last=2, tag="again")  # a resumed run saving the same step replaces it
    assert ckpt.read_trainer_state(tmp_path / "checkpoint-000004")["tag"] == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000003", "checkpoint-000004"]


def test_bad_trainer_state_is_a_one_line_error(tmp_path):
    path = _save(tmp_path, 3)
    (path / "trainer_state.json").write_text("{not json")
    with pytest.raises(SeerError, match="trainer_state.json: cannot read") as err:
        ckpt.read_trainer_state(path)
    assert "\n" not in str(err.value)
    (path / "trainer_state.json").write_text(json.dumps({"step": "three"}))
    with pytest.raises(SeerError, match="integer 'step'"):
        ckpt.read_trainer_state(path)


def test_loading_into_a_different_model_names_the_tensor(tmp_path):
    path = _save(tmp_path, 1)
    other = torch.nn.Sequential(torch.nn.Linear(4, 8))
    with pytest.raises(SeerError, match=r"model.safetensors: (missing|unexpected) tensor"):
        ckpt.load_checkpoint(path, model=other)


def test_resume_drops_what_a_killed_pretrain_logged_after_its_checkpoint(tmp_path):
    """Records after the checkpoint go; at the checkpoint's step a stage's final evaluation (logged after its last
    checkpoint, and run again by --resume) goes too, but an in-stage evaluation (logged before it) and the step's
    own training record stay."""
    from seer.train.pretrain import RunLog

    records = [
        {"stage": "vq", "step": 10, "stage_step": 10, "loss": 1.0, "lr": 0.1},
        {"stage": "vq", "step": 10, "stage_step": 10, "eval/vq_exact": 0.5},  # in-stage evaluation, then checkpoint
        {"stage": "vq", "step": 20, "stage_step": 20, "loss": 0.5, "lr": 0.1},
        {"stage": "vq", "step": 20, "stage_step": 20, "eval/vq_exact": 0.9},  # the stage's final evaluation
        {"stage": "lm", "step": 21, "stage_step": 1, "loss": 3.0, "lr": 0.01},
    ]

    def logged(step, stage_finished):
        log = RunLog(tmp_path / "metrics.jsonl", enabled=True)
        log.path.unlink(missing_ok=True)
        for record in records:
            log.write(record)
        log.truncate_after(step, stage_finished=stage_finished)
        return [json.loads(line) for line in log.path.read_text().splitlines()]

    assert logged(10, stage_finished=False) == records[:2]
    assert logged(20, stage_finished=True) == records[:3]
    assert logged(20, stage_finished=False) == records[:4]
