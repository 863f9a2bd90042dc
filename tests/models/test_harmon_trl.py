"""One RLVR step on a tiny Harmon through TRL's GRPOTrainer, as `seer rlvr` builds it (`rlvr.build_trainer`).

Checks what TRL needs from the backend: the processor (chat template, two images per question), ``generate``,
the fused LM head over ``base_model`` (images merged), PEFT, and that only the evaluator's LoRA weights move.
The ``-m gpu`` tests run the same step at Harmon-1.5B's shape (random weights, bf16) and time a batch of images:
``pytest -m gpu -s tests/models/test_harmon_trl.py`` on the device machine; their figures are in
benchmarks/RESULTS.md. The RLMT step is the RLMT trainer's test (src/seer/train/rlmt.py).
"""

import time

import pytest
import torch
from datasets import Dataset
from PIL import Image

from seer.models.adapters import EVALUATOR, LoraSettings
from seer.models.harmon import HarmonUMM
from seer.rl.rewards import RLVR_REWARDS
from seer.train.rlvr import RLVRArgs, build_trainer


def length_reward(completions, **kwargs):
    """A reward with variance even for a random model (RLVR's own rewards are all 0 there, so no gradient)."""
    return [float(len(c[0]["content"] if isinstance(c, list) else c)) for c in completions]


QUESTION = "does the first image match the prompt better than the second image ? prompt : a red circle"


def rlvr_step(umm, out, *, device="cpu", max_completion_length=8, bf16=False):
    """Run one GRPO step of the evaluator adapter; returns (the trainer, LoRA weights before the step)."""
    args = RLVRArgs(
        output_dir=str(out), device=device, max_steps=1, prompts_per_step=2, num_generations=2,
        max_completion_length=max_completion_length, heldout_items=0, curriculum_threshold=None,
        learning_rate=1e-2, bf16=bf16,
    )  # fmt: skip
    images = [Image.new("RGB", (32, 32), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
    rows = [
        {"prompt": [{"role": "user", "content": QUESTION}], "images": images, "solution": answer}
        for answer in ("Yes", "No")
    ]
    umm.add_adapter(EVALUATOR, LoraSettings(r=4, alpha=8))
    umm.activate_adapter(EVALUATOR, trainable=True)
    before = {n: p.detach().clone() for n, p in umm.module.named_parameters() if p.requires_grad}
    args.reward_weights = [1.0, 1.0, 0.01]
    rewards = [*RLVR_REWARDS.values(), length_reward]
    trainer = build_trainer(umm, args, Dataset.from_list(rows), rewards, [])
    trainer.train()
    return trainer, before


def test_one_rlvr_step_moves_only_the_evaluator(tmp_path):
    umm = HarmonUMM.from_shape("harmon-tiny", seed=0)
    base = {n: p.detach().clone() for n, p in umm.harmon.named_parameters()}
    trainer, before = rlvr_step(umm, tmp_path / "run")
    assert trainer.state.global_step == 1
    logged = trainer.state.log_history[0]
    assert torch.isfinite(torch.tensor(logged["loss"]))
    after = dict(umm.module.named_parameters())
    assert any(not torch.equal(after[n], p) for n, p in before.items())  # the adapter learned something
    with torch.no_grad():
        for name, p in umm.harmon.named_parameters():
            if ".lora_" not in name:
                assert torch.equal(p, base[name.replace(".base_layer", "")]), name  # the base is untouched


# ---- Harmon-1.5B's shape on a GPU (-m gpu) ----


@pytest.fixture(scope="module")
def harmon_1_5b():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    start = time.perf_counter()
    umm = HarmonUMM.from_shape("harmon-1.5b", seed=0, dtype=torch.bfloat16, device="cuda")
    parameters = sum(p.numel() for p in umm.harmon.parameters())
    print(f"\nharmon-1.5b built in {time.perf_counter() - start:.1f} s: {parameters / 1e9:.2f}B parameters (bf16)")
    return umm


@pytest.mark.gpu
def test_harmon_1_5b_generates_a_batch_of_images(harmon_1_5b):
    umm = harmon_1_5b
    prompts = ["a red circle at the center", "a small blue square", "a large green triangle", "a white ring"]
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    with umm.no_adapter():
        out = umm.generate_images(prompts, seeds=[1, 2, 3, 4])  # 512 px, CFG 3.0, 64 iterations, 100-step head
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"harmon-1.5b images: batch 4, 512 px, CFG 3, 64 iterations: {seconds:.1f} s "
          f"({len(prompts) / seconds:.2f} images/s), peak {peak:.1f} GiB")  # fmt: skip
    assert out.token_ids.shape == (4, 1024, 16) and bool(torch.isfinite(out.token_ids).all())
    assert [(im.size, im.mode) for im in out.images] == [((512, 512), "RGB")] * 4


@pytest.mark.gpu
def test_harmon_1_5b_one_rlvr_step(harmon_1_5b, tmp_path):
    umm = harmon_1_5b
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    trainer, before = rlvr_step(umm, tmp_path / "run", device="cuda", max_completion_length=64)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"harmon-1.5b RLVR step (2 questions x 2 answers, 2 images of 1,088 tokens each, <= 64 new tokens, "
          f"LoRA r4): {seconds:.1f} s, peak {peak:.1f} GiB")  # fmt: skip
    assert trainer.state.global_step == 1
    assert torch.isfinite(torch.tensor(trainer.state.log_history[0]["loss"]))
    after = dict(umm.module.named_parameters())
    assert any(not torch.equal(after[n], p) for n, p in before.items())
