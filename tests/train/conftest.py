"""Set-up shared by the GRPO-stage tests that need a model whose training moves (non-finite steps, SIGKILL) and,
for RLMT, an RLVR run to read the judge from (`write_rlvr_run`, also named `fake_rlvr_run`).

`formatted_weights`: the small Janus of tests/conftest.py after ~4 s of fitting both SEER roles' answer formats:
reprompt questions answered with one of three literal prompts, two-image instruction questions with a random
Yes/No. Its answers reach ``<answer>``, so GRPO groups differ in reward and training moves the adapter (random
weights earn no reward: nothing would move, and a test that compares weights would prove nothing).
"""

import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from seer.config import save_config
from seer.data.build import generate_sets
from seer.formats import format_answer
from seer.models.adapters import EVALUATOR
from seer.rl.reprompt import REPROMPT_TEMPLATE
from seer.train.rlvr import RLVRArgs
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import random_scene


@pytest.fixture(scope="session")
def formatted_weights(small_janus):
    """The fitted state dict (see the module docstring)."""
    umm = small_janus()
    rng = random.Random(0)
    torch.manual_seed(0)
    items = generate_sets(0, 25, 1)[0]
    templates = RLVRArgs().templates()
    descriptors = [describe(random_scene(random.Random(i), n_objects=1)) for i in range(3)]  # quick to memorise
    optimizer = torch.optim.AdamW(umm.janus.parameters(), lr=5e-3)
    for _ in range(80):
        batch = rng.sample(items, 8)
        questions = [REPROMPT_TEMPLATE.format(prompt=i.prompt, instruction=i.instruction) for i in batch]
        answers = [format_answer("the prompt", rng.choice(descriptors)) + " <eos>" for _ in batch]
        judged = [templates.instruction_question.format(prompt=i.prompt, instruction=i.instruction) for i in batch]
        verdicts = [format_answer("the first image", rng.choice(["Yes", "No"])) + " <eos>" for _ in batch]
        images = [[render(random_scene(rng)), render(random_scene(rng))] for _ in batch]
        loss = 0
        for prompts, completions, imgs in ((questions, answers, None), (judged, verdicts, images)):
            out = umm.token_logprobs(prompts, completions, imgs)
            loss = loss - out.logprobs.sum() / out.mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: t.detach().clone() for name, t in umm.janus.state_dict().items()}


@pytest.fixture
def formatted_janus(small_janus, formatted_weights):
    """A factory: a fresh small Janus holding `formatted_weights`."""

    def build():
        umm = small_janus()
        umm.janus.load_state_dict(formatted_weights)
        return umm

    return build


@pytest.fixture(scope="session")
def write_rlvr_run():
    """A factory: write(path, umm, **keys) makes an RLVR run directory for `seer rlmt --evaluator`: its config.yaml
    (``RLVRArgs(**keys)``) and an evaluator adapter of `umm` with small random (non-zero) weights."""

    def write(path, umm, **keys):
        save_config(path, RLVRArgs(output_dir=str(path), max_completion_length=10, **keys))
        umm.add_adapter(EVALUATOR)
        umm.save_adapter(EVALUATOR, path / EVALUATOR)
        weights = load_file(path / EVALUATOR / "adapter_model.safetensors")
        gen = torch.Generator().manual_seed(0)
        save_file({k: torch.randn(t.shape, generator=gen) * 0.01 for k, t in weights.items()},
                  str(path / EVALUATOR / "adapter_model.safetensors"))  # fmt: skip
        return path

    return write


@pytest.fixture(scope="session")
def fake_rlvr_run(write_rlvr_run):
    """test_rlmt.py's name for `write_rlvr_run`."""
    return write_rlvr_run
