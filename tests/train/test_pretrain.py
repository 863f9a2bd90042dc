"""`seer pretrain`: data determinism and held-out split, VQ training, gradient coverage (DDP-safe), and the
command end to end: outputs, refusal of a used output_dir, and resume ending bit-identical to an uninterrupted run.
"""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seer.cli import main as cli_main
from seer.models.janus import JanusUMM
from seer.train.pretrain import (
    LMBatches,
    LMObjective,
    PretrainArgs,
    held_out_scenes,
    is_held_out,
    prepare_output_dir,
    task_counts,
    training_example,
)
from seer.train.vq import VQBatches, code_usage, reconstruction_exact_rate, restart_dead_codes, vq_losses
from seer.worlds.shapeworld.corpus import TASK_WEIGHTS, corpus_words
from seer.worlds.shapeworld.render import render

torch.set_num_threads(2)
# A few steps of each stage with minimal evaluation: the debug recipe, made smaller still.
TINY = ["--config", "recipes/pretrain/debug_cpu.yaml", "--log_steps", "1", "--save_total_limit", "10",
        "--eval_samples", "1", "--eval_max_new_tokens", "2", "--vq_eval_scenes", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def umm():
    return JanusUMM.from_shape("shapeworld-tiny", seed=0, words=corpus_words())


# ---- data ----


def test_task_counts_are_stratified_by_the_task_weights():
    counts = task_counts(256)
    assert sum(counts.values()) == 256 and set(counts) == set(TASK_WEIGHTS)
    spare = 256 - len(TASK_WEIGHTS)
    for task, weight in TASK_WEIGHTS.items():  # one each, then the spare ones in proportion (within rounding)
        assert abs(counts[task] - (1 + spare * weight / sum(TASK_WEIGHTS.values()))) < 1
    assert task_counts(len(TASK_WEIGHTS)) == {task: 1 for task in TASK_WEIGHTS}


def test_held_out_scenes_never_appear_as_t2i_or_caption_training_examples():
    rng = random.Random(0)
    for task in ("t2i", "caption"):
        assert not any(is_held_out(training_example(task, rng, 0.5).scenes[0], 0.5) for _ in range(200))
    scenes = held_out_scenes(seed=0, n_objects=3, count=20, fraction=0.5)
    assert len(set(scenes)) == 20 and all(is_held_out(s, 0.5) and len(s.objects) == 3 for s in scenes)
    assert held_out_scenes(0, 3, 20, 0.5) == scenes  # the evaluation set is fixed by the seed


def test_lm_batch_is_a_pure_function_of_seed_step_and_rank(umm):
    args = PretrainArgs(output_dir="unused", batch_size=12)
    batches = LMBatches(umm.processor, args, rank=0, image_size=32)
    first, again = batches[3], batches[3]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(batches[4]["t2i_pixels"], first["t2i_pixels"])
    other_rank = LMBatches(umm.processor, args, rank=1, image_size=32)[3]
    assert not torch.equal(other_rank["t2i_pixels"], first["t2i_pixels"])
    counts = task_counts(12)
    assert first["t2i_ids"].shape[0] == first["t2i_pixels"].shape[0] == counts["t2i"]
    assert first["text_ids"].shape[0] == 12 - counts["t2i"]
    # one image per image-task example (two for two_images), and exactly as many placeholder runs in the text batch
    image_examples = counts["caption"] + counts["vqa"] + counts["concept_vqa"] + 2 * counts["two_images"]
    assert first["text_pixels"].shape[0] == image_examples
    assert (first["text_ids"] == umm.tokenizer.image_token_id).sum() == image_examples * umm.num_image_tokens


def test_one_lm_step_gives_every_trainable_parameter_a_gradient(umm):
    """DDP without find_unused_parameters needs it; the frozen VQ gets none."""
    fresh = JanusUMM.from_shape("shapeworld-tiny", seed=0, words=corpus_words())
    fresh.janus.model.vqmodel.requires_grad_(False)
    batch = LMBatches(fresh.processor, PretrainArgs(output_dir="unused", batch_size=len(TASK_WEIGHTS)), 0, 32)[0]
    LMObjective(fresh, 1.0)(**batch)["loss"].backward()
    missing = [
        n for n, p in fresh.janus.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    assert missing == []
    assert all(p.grad is None for p in fresh.janus.model.vqmodel.parameters())


# ---- VQ ----


def test_vq_training_forward_decodes_exactly_like_inference(umm):
    batch = VQBatches(seed=0, rank=0, batch_size=3, mean=(0.5,) * 3, std=(0.5,) * 3, size=32)[0]["pixels"]
    vq = umm.janus.model.vqmodel
    with torch.no_grad():
        out = vq_losses(vq, batch)
        decoded = vq.decode(out.codes)
    assert torch.allclose(out.reconstruction, decoded, atol=1e-5)  # the straight-through value is the code
    images = [render(s) for s in _scenes_of(seed=0, step=0, n=3)]
    assert torch.equal(out.codes, umm.encode_images(images))  # the codes inference picks


def _scenes_of(seed, step, n):
    from seer.train.vq import sample_scene

    rng = random.Random(f"vq-{seed}-{step}-0")
    return [sample_scene(rng) for _ in range(n)]


def test_a_few_vq_steps_reduce_reconstruction_loss_on_a_fixed_batch():
    model = JanusUMM.from_shape("shapeworld-tiny", seed=1)
    vq = model.janus.model.vqmodel.train()
    pixels = VQBatches(0, 0, 8, (0.5,) * 3, (0.5,) * 3, 32)[0]["pixels"]
    optimizer = torch.optim.AdamW(vq.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        out = vq_losses(vq, pixels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.recon.item())
        # every VQ parameter is trained (DDP without find_unused_parameters needs it)
        assert all(p.grad is not None and p.grad.any() for p in vq.parameters())
    assert losses[-1] < 0.8 * losses[0]  # 0.57 -> 0.43 (a flat-colour reconstruction is ~0.5)


def test_restart_moves_only_dead_codes_onto_candidates_deterministically():
    torch.manual_seed(0)
    weight = torch.randn(6, 3) * 2.0
    usage = torch.tensor([4.0, 0.0, 1.0, 0.0, 0.0, 9.0])  # codes 1, 3, 4 are dead
    candidates = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    first, second = weight.clone(), weight.clone()
    moved = restart_dead_codes(first, usage, candidates, torch.Generator().manual_seed(7))
    restart_dead_codes(second, usage, candidates, torch.Generator().manual_seed(7))
    assert moved.item() == 3 and torch.equal(first, second)  # same generator, same picks (every process agrees)
    live = [0, 2, 5]
    assert torch.equal(first[live], weight[live])
    live_norm = weight[live].norm(dim=-1).mean()
    for row in (1, 3, 4):  # each dead code now points at one of the candidates, at the live codes' mean norm
        direction = torch.nn.functional.normalize(first[row], dim=0)
        assert (candidates @ direction).max().item() == pytest.approx(1.0, abs=1e-6)
        assert first[row].norm().item() == pytest.approx(live_norm.item(), rel=1e-5)
    assert torch.equal(code_usage(torch.tensor([[0, 5], [5, 5]]), 6), torch.tensor([1.0, 0, 0, 0, 0, 3.0]))


def test_reconstruction_exact_rate_is_the_oracle_match_fraction():
    class Tokenizer:  # a perfect tokenizer, except that it blanks the second image
        image_size = 32

        def encode_images(self, images):
            return images

        def decode_tokens(self, images):
            return [img if i != 1 else img.point(lambda _: 255) for i, img in enumerate(images)]

    scenes = _scenes_of(seed=5, step=0, n=4)
    report = reconstruction_exact_rate(Tokenizer(), scenes)
    assert report.exact_rate == 0.75
    assert report.readings[0] == scenes[0] and report.readings[1] != scenes[1]


# ---- the command ----


def test_two_step_run_writes_config_metrics_and_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(["pretrain", *TINY, "--vq_steps", "1", "--lm_steps", "1", "--output_dir", str(out)]) == 0
    assert "lm_steps: 1" in (out / "config.yaml").read_text()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in records if "loss" in r] == [("vq", 1), ("lm", 2)]
    final_eval = records[-1]
    assert {"eval/t2i_exact_1obj", "eval/t2i_exact_3obj", "eval/caption_exact", "eval/knowledge_acc"} <= set(
        final_eval
    )
    assert "eval/vq_exact" in records[1]
    loaded = JanusUMM.from_pretrained(out / "model")
    saved = load_file(out / "checkpoints" / "checkpoint-000002" / "model.safetensors")
    for name, tensor in loaded.janus.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert "t2i 1-object (sampled, CFG 5.0)" in capsys.readouterr().out  # raw samples are printed, mode named

    # The same command again refuses the used directory, with one line.
    assert cli_main(["pretrain", *TINY, "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--resume" in err and "--overwrite" in err


def test_init_from_continues_a_saved_model_and_keeps_its_image_tokenizer(tmp_path, capsys):
    first = tmp_path / "first"
    assert cli_main(["pretrain", *TINY, "--vq_steps", "1", "--lm_steps", "1", "--output_dir", str(first)]) == 0
    start = _weights(first)

    # No steps: the saved model is the one it started from, bit for bit (it was loaded, not re-initialised).
    same = tmp_path / "same"
    args = ["--init_from", str(first / "model"), "--vq_steps", "0"]
    assert cli_main(["pretrain", *TINY, *args, "--lm_steps", "0", "--output_dir", str(same)]) == 0
    assert all(torch.equal(t, start[k]) for k, t in _weights(same).items())

    # One LM step: the language model moves, the frozen image tokenizer does not.
    more = tmp_path / "more"
    assert cli_main(["pretrain", *TINY, *args, "--lm_steps", "1", "--output_dir", str(more)]) == 0
    after = _weights(more)
    vq = [k for k in after if ".vqmodel." in k]
    assert vq and all(torch.equal(after[k], start[k]) for k in vq)
    assert any(not torch.equal(after[k], start[k]) for k in after if "language_model" in k)

    capsys.readouterr()
    assert cli_main(["pretrain", *TINY, "--init_from", str(tmp_path), "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--init_from" in err and "config.json" in err


def test_overwrite_deletes_only_the_runs_own_files(tmp_path):
    for name in ("checkpoints/checkpoint-000001", "model", "samples"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("mine")
    prepare_output_dir(PretrainArgs(output_dir=str(tmp_path), overwrite=True), is_main=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _weights(run):
    return load_file(run / "model" / "model.safetensors")


def _losses(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def test_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    steps = [*TINY, "--vq_steps", "3", "--lm_steps", "3", "--save_steps", "2", "--vq_restart_steps", "1"]
    full = tmp_path / "full"
    assert cli_main(["pretrain", *steps, "--output_dir", str(full)]) == 0

    # Interrupted in the VQ stage by the time limit (it stops at its first log step and checkpoints), then resumed.
    cut = tmp_path / "cut"
    assert cli_main(["pretrain", *steps, "--time_limit_minutes", "1e-9", "--output_dir", str(cut)]) == 0
    assert [p.name for p in (cut / "checkpoints").iterdir()] == ["checkpoint-000001"]
    assert cli_main(["pretrain", *steps, "--resume", "--output_dir", str(cut)]) == 0

    # Killed in the LM stage after the checkpoint of global step 4: later checkpoints and the model never written.
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    for name in ("checkpoint-000005", "checkpoint-000006", "model"):
        shutil.rmtree(killed / "checkpoints" / name if name != "model" else killed / name)
    assert cli_main(["pretrain", *steps, "--resume", "--output_dir", str(killed)]) == 0

    reference = _weights(full)
    for run in (cut, killed):
        weights = _weights(run)
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[k], reference[k]) for k in reference), run.name
        assert _losses(run) == _losses(full)  # the same batches, the same losses, each step logged once


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_resumes_bit_identical(tmp_path):
    """The multi-process path (DDP over gloo, per-rank data and RNG files, barriers around checkpoints)."""
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "-m", "seer.cli", "pretrain"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    steps = [*TINY, "--vq_steps", "3", "--lm_steps", "3", "--vq_restart_steps", "1"]

    def run(*extra):
        done = subprocess.run(
            [*torchrun, *steps, *extra], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]

    run("--output_dir", str(tmp_path / "full"))
    run("--output_dir", str(tmp_path / "cut"), "--time_limit_minutes", "1e-9")
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints" / "checkpoint-000001").iterdir()) == [
        "model.safetensors", "optimizer.pt", "rng_state_0.pt", "rng_state_1.pt", "scheduler.pt", "trainer_state.json"
    ]  # fmt: skip
    run("--output_dir", str(tmp_path / "cut"), "--resume")
    reference, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
