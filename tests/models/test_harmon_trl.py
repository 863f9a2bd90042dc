"""One RLVR and one RLMT step on a tiny Harmon through TRL's GRPOTrainer, as `seer rlvr` and `seer rlmt` build them.

RLVR (`rlvr.build_trainer`): checks what TRL needs from the backend: the processor (chat template, two images per
question), ``generate``, the fused LM head over ``base_model`` (images merged), PEFT, and that only the evaluator's
LoRA weights move. RLMT (`rlmt.run`, all of `seer rlmt` after loading the model): the reprompter, a copy of the
evaluator adapter, is the policy; the frozen generator renders each descriptor and the naive concatenation with one
seed; the frozen evaluator's P(Yes), averaged over both image orders, is the reward; only the reprompter moves.

Random weights neither write a well-formed reprompt nor reach the judge's ``<answer>``, so, as
benchmarks/rlmt_step.py does, the reward reads each sampled answer as well formed, with a ShapeWorld descriptor
seeded by its text, and a judge answer without ``<answer>`` as if it ended in one: every reprompt is rendered and
judged. Even so, P(Yes) gives no gradient: an untrained diffusion head's chain blows the latents up (x 1e4), so the
decoded images saturate and every text drawn with one seed gives the same image, hence the same reward for a whole
group. As in the RLVR step, a small length reward (weight 0.01) gives the groups' rewards variance.

The ``-m gpu`` tests run both steps at Harmon-1.5B's shape (random weights, bf16) and time a batch of images:
``pytest -m gpu -s tests/models/test_harmon_trl.py`` on the device machine; their figures are in
benchmarks/RESULTS.md.
"""

import json
import math
import random
import time
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from PIL import Image
from safetensors.torch import load_file

import seer.rl.judge as judge_module
from seer.config import save_config
from seer.formats import ANSWER_OPEN, naive_concatenation
from seer.models.adapters import EVALUATOR, REPROMPTER, LoraSettings, adapter_parameters
from seer.models.harmon import HarmonUMM
from seer.rl.reprompt import Reprompt
from seer.rl.rewards import RLVR_REWARDS
from seer.train import rlmt
from seer.train.grpo import build_grpo_trainer
from seer.train.rlvr import RLVRArgs, build_trainer
from seer.worlds.shapeworld.corpus import corpus_words
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.scene import random_scene


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
    rewards = [*RLVR_REWARDS.values(), length_reward]
    trainer = build_trainer(umm, args, Dataset.from_list(rows), rewards, [1.0, 1.0, 0.01], [])
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


# ---- one RLMT step: `seer rlmt` (rlmt.run) with the two substitutions of the module docstring ----

PARSE_DESCRIPTOR, ANSWER_PREFIX = rlmt.parse_descriptor, judge_module.answer_prefix


def well_formed(text, *, grammar, max_words):
    """`rlmt.parse_descriptor`, reading an answer it rejects as well formed, with a ShapeWorld descriptor seeded by
    the answer's text (distinct answers: distinct descriptors)."""
    parsed = PARSE_DESCRIPTOR(text, grammar=grammar, max_words=max_words)
    if parsed.descriptor is not None:
        return parsed
    return Reprompt(text, describe(random_scene(random.Random(f"forced/{text}"))), "forced", None)


def answer_reached(text):
    """`judge.answer_prefix`, reading a judge answer without ``<answer>`` as if it ended in one."""
    prefix = ANSWER_PREFIX(text)
    return prefix if prefix is not None else f"{text} {ANSWER_OPEN}"


def with_length_reward(model, args, dataset, reward, callbacks):
    """`rlmt.build_trainer` with `length_reward` (weight 0.01) beside the RLMT reward (see the module docstring)."""
    return build_grpo_trainer(model, args, dataset, [reward, length_reward], [1.0, 0.01], callbacks)


def rlmt_step(umm, out, monkeypatch, *, device="cpu", dtype="float32", max_completion_length=8, judge_tokens=8):
    """Run one step of `seer rlmt` (2 items x 2 reprompts) on `umm`, judged by an evaluator adapter with random LoRA
    weights that is on the model (as `seer run` passes it) and in an RLVR run directory (the reprompter starts as
    its copy, ``init_from: evaluator``). Returns (the run's arguments, the texts drawn, the evaluator's weights)."""
    rlvr_dir = out / "rlvr"
    save_config(rlvr_dir, RLVRArgs(output_dir=str(rlvr_dir), backend="harmon", max_completion_length=judge_tokens))
    umm.add_adapter(EVALUATOR, LoraSettings(r=16, alpha=32))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # lora_B starts at 0: an adapter that changes nothing would judge as the base does
        for p in adapter_parameters(umm.module, EVALUATOR).values():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    umm.save_adapter(EVALUATOR, rlvr_dir / EVALUATOR)
    evaluator = {n: p.detach().clone() for n, p in adapter_parameters(umm.module, EVALUATOR).items()}
    drawn = []
    generate_images = umm.generate_images

    def recording(prompts, **kwargs):
        drawn.extend(prompts)
        return generate_images(prompts, **kwargs)

    monkeypatch.setattr(umm, "generate_images", recording)
    monkeypatch.setattr(rlmt, "parse_descriptor", well_formed)
    monkeypatch.setattr(judge_module, "answer_prefix", answer_reached)
    monkeypatch.setattr(rlmt, "build_trainer", with_length_reward)
    args = rlmt.RLMTArgs(
        backend="harmon", device=device, dtype=dtype, evaluator=str(rlvr_dir), output_dir=str(out / "rlmt"),
        max_steps=1, prompts_per_step=2, num_generations=2, max_train_items=4, learning_rate=1e-2,
        max_completion_length=max_completion_length, guidance_scale=3.0, fidelity_samples=2,
        judge_batch_size=16, image_batch_size=16,
    )  # fmt: skip
    assert rlmt.run(args, umm, "random weights") == 0
    return args, drawn, evaluator


def base_weights(umm, device="cpu"):
    """Copies of every non-LoRA weight, by its name without PEFT's ``.base_layer``."""
    return {name.replace(".base_layer", ""): p.detach().to(device, copy=True)
            for name, p in umm.harmon.named_parameters() if ".lora_" not in name}  # fmt: skip


def check_rlmt_step(umm, args, drawn, evaluator, base):
    """One step ran and every reprompt was rendered and judged; only the reprompter's LoRA weights moved."""
    out = Path(args.output_dir)
    (row,) = [json.loads(line) for line in (out / rlmt.METRICS_FILE).read_text().splitlines()]
    assert row["step"] == 1 and math.isfinite(row["loss"]) and row["reward_std"] > 0
    results = json.loads((out / rlmt.RESULTS_FILE).read_text())
    assert results["status"] == "completed" and results["steps"] == 1
    # The reward's path: both naive images, then each distinct descriptor, rendered; every pair judged.
    items = {item.id: item for item in rlmt.load_items(args)[0]}
    rows = rlmt.build_rows(list(items.values()), args.reprompt_template, 2, 1, args.seed)
    naive = [naive_concatenation(items[r["item_id"]].instruction, items[r["item_id"]].prompt) for r in rows]
    assert drawn[:2] == naive and len(drawn) == 2 + round(4 * row["rlmt/distinct_descriptors"]) > 2
    assert row["rlmt/valid"] == 1.0 and row["rlmt/judge_no_answer"] == 0.0 and 0 < row["rlmt/p_yes_first"] < 1
    assert "fidelity/oracle_pass" in row
    # Only the reprompter learned: it moved from the evaluator's weights it started from, which stayed put.
    start = load_file(Path(args.evaluator) / EVALUATOR / "adapter_model.safetensors")
    trained = load_file(out / REPROMPTER / "adapter_model.safetensors")
    assert start.keys() == trained.keys() and any(not torch.equal(start[k], trained[k]) for k in start), row
    after = adapter_parameters(umm.module, EVALUATOR)
    assert evaluator and after.keys() == evaluator.keys()
    assert all(torch.equal(after[n], p) and not after[n].requires_grad for n, p in evaluator.items())
    now = base_weights(umm)
    assert now.keys() == base.keys()
    for name, p in now.items():
        assert torch.equal(p, base[name]), name  # the base is untouched


def test_one_rlmt_step_moves_only_the_reprompter(tmp_path, monkeypatch):
    umm = HarmonUMM.from_shape("harmon-tiny", seed=0, words=corpus_words())  # as `seer rlmt --model_shape` builds it
    base = base_weights(umm)
    args, drawn, evaluator = rlmt_step(umm, tmp_path, monkeypatch)
    check_rlmt_step(umm, args, drawn, evaluator, base)


# ---- Harmon-1.5B's shape on a GPU (-m gpu) ----


@pytest.fixture(scope="module")
def harmon_1_5b_weights():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    start = time.perf_counter()
    umm = HarmonUMM.from_shape("harmon-1.5b", seed=0, words=corpus_words(), dtype=torch.bfloat16, device="cuda")
    parameters = sum(p.numel() for p in umm.harmon.parameters())
    print(f"\nharmon-1.5b built in {time.perf_counter() - start:.1f} s: {parameters / 1e9:.2f}B parameters (bf16)")
    return umm


@pytest.fixture
def harmon_1_5b(harmon_1_5b_weights):
    """The module's Harmon-1.5B without adapters, in any test order: each test adds its own, removed afterwards."""
    weights = harmon_1_5b_weights
    umm = HarmonUMM(weights.harmon, weights.processor, num_iterations=weights.num_iterations)
    yield umm
    if umm.adapter_names:
        umm.module.unload()  # PEFT takes its LoRA layers out of the shared model again (nothing merged)


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


@pytest.mark.gpu
@pytest.mark.parametrize("attention", ["default", "no-cudnn"])
def test_harmon_1_5b_left_padded_backward_is_finite(harmon_1_5b, attention):
    """The RLMT step's backward alone, in seconds: two prompts of different lengths, left-padded by TRL (each pad
    query row attends to nothing: a fully masked SDPA row), 64 random completion tokens, a random r16 adapter, bf16.
    ``default`` is SDPA's own choice (cuDNN attention on Hopper); ``no-cudnn`` leaves cuDNN out, to tell them apart."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from trl.trainer.utils import pad

    umm = harmon_1_5b
    umm.add_adapter(EVALUATOR, LoraSettings(r=16, alpha=32))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in adapter_parameters(umm.module, EVALUATOR).values():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    umm.activate_adapter(EVALUATOR, trainable=True)
    umm.module.train()
    prompts = ["a red circle", "a small blue square at the center of the image and a large green triangle"]
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    ids = umm.processor.apply_chat_template(conversation=conversations, add_generation_prompt=True, tokenize=True,
                                            return_dict=True, return_tensors=None)["input_ids"]  # as TRL reads them
    assert len(ids[0]) < len(ids[1])
    prompt_ids = pad([torch.tensor(i) for i in ids], padding_value=umm.tokenizer.pad_token_id, padding_side="left")
    prompt_mask = pad([torch.ones(len(i), dtype=torch.long) for i in ids], padding_value=0, padding_side="left")
    completion = torch.randint(10, umm.harmon.config.text_config.vocab_size, (2, 64), generator=gen)
    input_ids = torch.cat([prompt_ids, completion], dim=1).cuda()
    mask = torch.cat([prompt_mask, torch.ones_like(completion)], dim=1).cuda()
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends) if attention == "no-cudnn" else torch.enable_grad():
        logits = umm.module(input_ids=input_ids, attention_mask=mask, logits_to_keep=65).logits[:, :-1]
        logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, completion.cuda()[..., None]).squeeze(-1)
        logps.sum().backward()
    umm.module.eval()
    params = {n: p for n, p in umm.module.named_parameters() if p.requires_grad}
    bad = [n for n, p in params.items() if p.grad is None or not bool(torch.isfinite(p.grad).all())]
    norm = torch.stack([p.grad.float().norm() for p in params.values() if p.grad is not None]).norm()
    print(f"attention {attention}: {len(bad)} of {len(params)} LoRA gradients not finite, norm {norm:.3g}; "
          f"first: {bad[:3]}")
    assert bool(torch.isfinite(logps).all()) and not bad


@pytest.mark.gpu
def test_harmon_1_5b_one_rlmt_step(harmon_1_5b, tmp_path, monkeypatch):
    umm = harmon_1_5b
    base = base_weights(umm)  # on the CPU, before the clock starts
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    args, drawn, evaluator = rlmt_step(umm, tmp_path, monkeypatch, device="cuda", dtype="bfloat16",
                                       max_completion_length=64, judge_tokens=64)  # fmt: skip
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    head_steps = umm.harmon.mar.diffloss.schedule.num_steps
    step = json.loads((Path(args.output_dir) / rlmt.RESULTS_FILE).read_text())["seconds"]["training"]
    print(f"harmon-1.5b RLMT step (2 items x 2 reprompts, <= 64 new tokens; {len(drawn)} images, 512 px, CFG 3, "
          f"{umm.num_iterations} MAR iterations, {head_steps}-step head; both orders judged, two images of 1,088 "
          f"tokens each, <= 64 new tokens; LoRA r16): {step:.1f} s ({seconds:.1f} s with `rlmt.run`'s set-up and "
          f"saving), peak {peak:.1f} GiB")  # fmt: skip
    check_rlmt_step(umm, args, drawn, evaluator, base)
