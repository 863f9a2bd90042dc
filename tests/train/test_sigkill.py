"""Real kills: `seer pretrain`, `seer rlvr` and `seer rlmt` run as subprocesses and are sent SIGKILL at a random
moment after their first complete checkpoint; the same command with `--resume` then ends with the weights and
metrics of an uninterrupted run of the same seed, bit for bit.

The moment: the uninterrupted run is timed from its first complete checkpoint to its last write (results.json, or
pretrain's model), the window a kill can land in (steps, checkpoint writes, evaluations, the final save), and the
killed run gets a delay drawn from a seeded RNG over that window (the seeds draw 13%, 46% and 24% of it: into
pretrain's VQ evaluation or LM stage, RLVR's middle steps, RLMT's early ones). A kill that comes too late (the run
had already exited) is retried. Before resuming, a torn
checkpoint is left where the next one would go (stage marker missing, files truncated), as a kill while writing it
leaves one, unless the kill already did: --resume must name the newest complete checkpoint and never read the torn
one. Metrics are compared line by line without their timing fields.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seer.models.adapters import EVALUATOR, REPROMPTER
from seer.train import checkpoint as ckpt
from seer.train import rlmt, rlvr

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 300  # seconds per command (a tiny run takes ~10 s on 2 busy cores)
TIMING_KEYS = {"steps_per_s", "step_time"}  # pretrain's and TRL's wall-clock metrics


def seer(*argv):
    return [sys.executable, "-m", "seer.cli", *map(str, argv)]


def wait_for(proc, condition, what):
    """Poll until `condition()` holds while `proc` runs; fails if it exits first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:  # it may have exited right after the condition became true
            assert condition(), f"the run exited (status {proc.returncode}) before {what}"
            return
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(0.01)


@contextmanager
def started(argv, log):
    """The command running as a subprocess, its output in `log`; killed on the way out if it still runs (a failed
    assertion leaves no process behind)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, env=ENV, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_uninterrupted(argv, log, first_checkpoint, last_write):
    """Run to the end; returns the seconds from its first complete checkpoint to `last_write()` holding."""
    with started(argv, log) as proc:
        wait_for(proc, first_checkpoint, "a complete checkpoint")
        seen = time.monotonic()
        wait_for(proc, last_write, "the run's last write")
        window = time.monotonic() - seen
        code = proc.wait(TIMEOUT)
    assert code == 0, Path(log).read_text()[-3000:]
    return window


def kill_at_random(argv, out, log, first_checkpoint, window, rng):
    """Start the run, wait for its first complete checkpoint plus a random delay within `window`, SIGKILL it."""
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        with started(argv, log) as proc:
            wait_for(proc, first_checkpoint, "a complete checkpoint")
            delay = rng.uniform(0.0, 1.0) * window
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # a no-op if it already exited
            code = proc.wait(TIMEOUT)
        if code == -signal.SIGKILL:
            print(f"killed {delay:.2f} s into a {window:.2f} s window")  # shown when the test fails
            return
    pytest.fail(f"the run finished before the kill 3 times (window {window:.2f} s)")


def resume(argv, log):
    """The same command with --resume, to the end; returns its output."""
    done = subprocess.run([*argv, "--resume"], env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)  # fmt: skip
    Path(log).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def leave_torn(latest, name, marker, truncate):
    """Put a torn checkpoint `name` beside `latest` (no `marker`, `truncate`d files) unless the kill left one."""
    torn = latest.parent / name
    if torn.exists():
        return torn
    shutil.copytree(latest, torn)
    (torn / marker).unlink(missing_ok=True)
    for file in truncate:
        path = torn / file
        path.write_bytes(path.read_bytes()[:10])
    return torn


def metrics(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def results(out):
    """results.json without its timings."""
    return {k: v for k, v in json.loads((out / "results.json").read_text()).items() if k != "seconds"}


def same_tensors(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ---- seer pretrain ----

PRETRAIN = ["pretrain", "--config", "recipes/pretrain/debug_cpu.yaml", "--log_steps", "1", "--save_steps", "1",
            "--save_total_limit", "10", "--eval_samples", "1", "--eval_max_new_tokens", "2", "--vq_eval_scenes", "1",
            "--vq_steps", "3", "--lm_steps", "3", "--vq_restart_steps", "1"]  # fmt: skip


def test_pretrain_killed_at_a_random_moment_resumes_bit_identical(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"

    def first_checkpoint(out):
        return lambda: (out / "checkpoints").is_dir() and ckpt.latest_checkpoint(out / "checkpoints") is not None

    window = run_uninterrupted(seer(*PRETRAIN, "--output_dir", full), tmp_path / "full.log", first_checkpoint(full),
                               lambda: (full / "model" / "model.safetensors").exists())  # fmt: skip
    argv = seer(*PRETRAIN, "--output_dir", killed)
    kill_at_random(argv, killed, tmp_path / "killed.log", first_checkpoint(killed), window, random.Random(1))
    latest = ckpt.latest_checkpoint(killed / "checkpoints")
    step = ckpt.read_trainer_state(latest)["step"]
    torn = killed / "checkpoints" / f"{ckpt.STAGING_PREFIX}{ckpt.checkpoint_name(step + 1)}"
    if not torn.exists():  # a save the kill interrupted, as save_checkpoint stages it
        shutil.copytree(latest, torn)
        (torn / "model.safetensors").write_bytes(b"\x00" * 10)
    printed = resume(argv, tmp_path / "resume.log")

    assert f"resuming from {latest}" in printed
    same_tensors(load_file(killed / "model" / "model.safetensors"), load_file(full / "model" / "model.safetensors"))
    assert split_records(metrics(killed)) == split_records(metrics(full))  # every step and evaluation logged once


def split_records(rows):
    """pretrain's metrics.jsonl: (training-step records, evaluation records)."""
    return [r for r in rows if "loss" in r], [r for r in rows if "loss" not in r]


# ---- seer rlvr and seer rlmt: a small Janus fitted to the answer formats, saved for the command line ----


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_janus, formatted_weights):
    path = tmp_path_factory.mktemp("model") / "small-janus"
    umm = small_janus()
    umm.janus.load_state_dict(formatted_weights)
    umm.save_pretrained(path)
    return path


def checkpoint_of(latest_checkpoint, out):
    return lambda: out.is_dir() and latest_checkpoint(out) is not None


def kill_and_resume(tmp_path, command, recipe, stage, marker, adapter, rng):
    """`seer <command> --config recipe` run whole, and again killed at a random moment, left with a torn checkpoint
    after its newest complete one, then resumed. Checks that the resume named that checkpoint and ended with the
    whole run's adapter, metrics and results; returns the resumed run's metrics."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    window = run_uninterrupted(seer(command, "--config", recipe, "--output_dir", full), tmp_path / "full.log",
                               checkpoint_of(stage.latest_checkpoint, full), (full / "results.json").exists)
    argv = seer(command, "--config", recipe, "--output_dir", killed)
    first = checkpoint_of(stage.latest_checkpoint, killed)
    kill_at_random(argv, killed, tmp_path / "killed.log", first, window, rng)
    latest = stage.latest_checkpoint(killed)
    step = int(latest.name.removeprefix("checkpoint-"))
    weights = f"{adapter}/adapter_model.safetensors"
    leave_torn(latest, f"checkpoint-{step + 1}", marker, ["trainer_state.json", weights])
    printed = resume(argv, tmp_path / "resume.log")

    assert f"resuming from {latest}" in printed
    same_tensors(load_file(killed / weights), load_file(full / weights))
    assert metrics(killed) == metrics(full)
    assert results(killed) == results(full)
    return metrics(killed)


def test_rlvr_killed_at_a_random_moment_resumes_with_the_uninterrupted_adapter(tmp_path, model_dir):
    recipe = tmp_path / "rlvr.yaml"
    recipe.write_text(  # stage-1 pairs for 2 steps, then stage-2: the resumed run must be on the right stage
        f"model: {model_dir}\npair_generator: renderer\nmax_train_items: 6\nheldout_items: 0\nprompts_per_step: 2\n"
        "num_generations: 4\nmax_completion_length: 12\nlearning_rate: 1.0e-2\ncurriculum_switch_step: 2\n"
        "curriculum_threshold: null\nmax_steps: 6\nsave_steps: 1\nseed: 3\n"
    )
    rows = kill_and_resume(tmp_path, "rlvr", recipe, rlvr, rlvr.CURRICULUM_FILE, EVALUATOR, random.Random(9))
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert [r["curriculum/stage"] for r in rows] == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_rlmt_killed_at_a_random_moment_resumes_with_the_uninterrupted_adapter(tmp_path, model_dir, formatted_janus,
                                                                             write_rlvr_run):  # fmt: skip
    evaluator = write_rlvr_run(tmp_path / "rlvr", formatted_janus(), model=str(model_dir))
    recipe = tmp_path / "rlmt.yaml"
    recipe.write_text(
        f"evaluator: {evaluator}\ngenerator: renderer\nmax_train_items: 6\nprompts_per_step: 2\nnum_generations: 4\n"
        "max_completion_length: 24\njudge_max_new_tokens: 10\nlearning_rate: 1.0e-2\ntemperature: 0.5\n"
        "fidelity_samples: 4\njudge_batch_size: 16\nmax_steps: 5\nsave_steps: 1\nseed: 3\n"
    )
    rows = kill_and_resume(tmp_path, "rlmt", recipe, rlmt, rlmt.STATE_FILE, REPROMPTER, random.Random(3))
    assert [r["step"] for r in rows] == list(range(1, 6))
