"""LoRA roles on the tiny Janus model: the disabled state is the base model exactly, switching restores state,
the freezing rule holds, and adapters round-trip through disk (or fail with a named tensor)."""

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from seer.errors import SeerError
from seer.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, EVALUATOR, REPROMPTER, adapter_parameters
from seer.models.janus import JanusUMM

torch.set_num_threads(2)

IMAGE = Image.new("RGB", (32, 32), (30, 170, 40))
PROMPTS = ["a large red circle at the top left", "a blue bar"]


@pytest.fixture()
def umm():
    return JanusUMM.from_shape("shapeworld-tiny", seed=0)


def text_logits(umm):
    """Next-token logits of an image question, by a plain forward of the trainable module."""
    enc = umm.processor(text=umm.format_prompt("what color ?", 1), images=[IMAGE], return_tensors="pt")
    with torch.no_grad():
        return umm.module(**enc).logits[0, -1]


def image_tokens(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    return umm.sample_image_tokens(input_ids, mask, do_sample=False, guidance_scale=5.0)


def randomise(umm, role, seed):
    """lora_B starts at zero (the adapter changes nothing); random values make each role matter, differently."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in adapter_parameters(umm.module, role).items():
        if "lora_B" in name:
            p.data.copy_(torch.randn(p.shape, generator=generator) * 0.5)


def trainable_names(umm):
    return {name for name, p in umm.module.named_parameters() if p.requires_grad}


def with_two_roles(umm):
    umm.add_adapter(EVALUATOR)
    umm.add_adapter(REPROMPTER)
    randomise(umm, EVALUATOR, 1)
    randomise(umm, REPROMPTER, 2)


def test_fresh_adapter_is_inert_and_frozen(umm):
    base_logits, base_images = text_logits(umm), image_tokens(umm)
    umm.add_adapter(EVALUATOR)
    assert umm.adapter_names == [EVALUATOR]
    assert torch.equal(text_logits(umm), base_logits) and torch.equal(image_tokens(umm), base_images)
    assert trainable_names(umm) == set()


def test_lora_wraps_only_the_language_model_attention(umm):
    umm.add_adapter(EVALUATOR)
    names = adapter_parameters(umm.module, EVALUATOR)
    # 4 layers x (q, k, v, o) x (lora_A, lora_B); the vision tower's own q/k/v projections stay plain
    assert len(names) == 4 * 4 * 2
    assert all(".model.language_model.layers." in name and ".self_attn." in name for name in names)


def test_disabled_adapters_are_the_base_model_exactly(umm):
    base_logits, base_images = text_logits(umm), image_tokens(umm)
    with_two_roles(umm)
    umm.activate_adapter(REPROMPTER, trainable=True)
    active_logits, active_images = text_logits(umm), image_tokens(umm)
    assert not torch.allclose(active_logits, base_logits)  # the adapters matter ...
    assert not torch.equal(active_images, base_images)
    with umm.no_adapter():  # ... and disabling them gives back the base bit for bit
        assert torch.equal(text_logits(umm), base_logits)
        assert torch.equal(image_tokens(umm), base_images)
    assert torch.equal(text_logits(umm), active_logits)
    assert trainable_names(umm) == set(adapter_parameters(umm.module, REPROMPTER))


def test_use_adapter_borrows_a_frozen_role_and_restores(umm):
    with_two_roles(umm)
    umm.activate_adapter(EVALUATOR)
    evaluator_logits = text_logits(umm)
    umm.activate_adapter(REPROMPTER, trainable=True)
    reprompter_logits = text_logits(umm)
    assert not torch.allclose(evaluator_logits, reprompter_logits)
    with umm.use_adapter(EVALUATOR):
        assert torch.equal(text_logits(umm), evaluator_logits)
        assert trainable_names(umm) == set()  # borrowed roles are never trainable
    assert umm.module.active_adapter == REPROMPTER
    assert torch.equal(text_logits(umm), reprompter_logits)
    assert trainable_names(umm) == set(adapter_parameters(umm.module, REPROMPTER))


def test_leaving_no_adapter_keeps_a_frozen_role_frozen(umm):
    # PEFT's own disable_adapter() makes the active adapter trainable on exit; ours restores the flags.
    with_two_roles(umm)
    umm.activate_adapter(EVALUATOR, trainable=False)
    with umm.no_adapter():
        pass
    assert trainable_names(umm) == set()


def test_use_adapter_inside_no_adapter_then_back_to_base(umm):
    base_logits = text_logits(umm)
    with_two_roles(umm)
    umm.activate_adapter(EVALUATOR)
    evaluator_logits = text_logits(umm)
    umm.activate_adapter(REPROMPTER, trainable=True)
    with umm.no_adapter():
        with umm.use_adapter(EVALUATOR):
            assert torch.equal(text_logits(umm), evaluator_logits)
        assert torch.equal(text_logits(umm), base_logits)
    assert trainable_names(umm) == set(adapter_parameters(umm.module, REPROMPTER))


def test_training_the_active_role_moves_only_its_weights(umm):
    with_two_roles(umm)
    umm.activate_adapter(REPROMPTER, trainable=True)
    before = {name: p.detach().clone() for name, p in umm.module.named_parameters()}
    params = [p for p in umm.module.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(params, lr=0.1)
    loss = -umm.token_logprobs(["what color ?"], ["red and blue"], [[IMAGE]]).logprobs.sum()
    loss.backward()
    optimiser.step()
    moved = {name for name, p in umm.module.named_parameters() if not torch.equal(p, before[name])}
    reprompter = set(adapter_parameters(umm.module, REPROMPTER))
    assert moved and moved <= reprompter  # no base weight and no evaluator weight moved


def test_adapter_save_load_round_trip(tmp_path, umm):
    with_two_roles(umm)
    umm.activate_adapter(EVALUATOR)
    evaluator_logits = text_logits(umm)
    written = umm.save_adapter(EVALUATOR, tmp_path / "checkpoint-10" / EVALUATOR)
    umm.save_adapter(EVALUATOR, written)  # overwriting works
    assert sorted(p.name for p in written.iterdir()) == sorted([ADAPTER_CONFIG, ADAPTER_WEIGHTS])
    assert sorted(p.name for p in written.parent.iterdir()) == [EVALUATOR]  # no staging folder left behind
    assert all(".lora_" in key for key in load_file(written / ADAPTER_WEIGHTS))

    fresh = JanusUMM.from_shape("shapeworld-tiny", seed=0)
    fresh.load_adapter(EVALUATOR, written)
    saved = adapter_parameters(umm.module, EVALUATOR)
    loaded = adapter_parameters(fresh.module, EVALUATOR)
    assert saved.keys() == loaded.keys()
    for name in saved:
        torch.testing.assert_close(loaded[name], saved[name], rtol=0, atol=0)
    assert trainable_names(fresh) == set()
    with fresh.use_adapter(EVALUATOR):
        assert torch.equal(text_logits(fresh), evaluator_logits)


def _saved_adapter(tmp_path, umm):
    umm.add_adapter(EVALUATOR)
    randomise(umm, EVALUATOR, 1)
    return umm.save_adapter(EVALUATOR, tmp_path / EVALUATOR) / ADAPTER_WEIGHTS


def test_loading_an_adapter_with_a_missing_tensor_names_it(tmp_path, umm):
    file = _saved_adapter(tmp_path, umm)
    tensors = load_file(file)
    name = sorted(tensors)[0]
    del tensors[name]
    save_file(tensors, file)
    fresh = JanusUMM.from_shape("shapeworld-tiny", seed=0)
    base_logits = text_logits(fresh)
    with pytest.raises(SeerError, match=f"{file}: tensor '{name}' is missing"):
        fresh.load_adapter(EVALUATOR, file.parent)
    assert fresh.adapter_names == [] and torch.equal(text_logits(fresh), base_logits)  # nothing half-loaded


def test_loading_an_adapter_with_a_misshaped_tensor_names_it(tmp_path, umm):
    file = _saved_adapter(tmp_path, umm)
    tensors = load_file(file)
    name = next(n for n in sorted(tensors) if "lora_A" in n)
    tensors[name] = torch.zeros(3, 256)
    save_file(tensors, file)
    with_other = JanusUMM.from_shape("shapeworld-tiny", seed=0)
    with_other.add_adapter(REPROMPTER)
    with pytest.raises(SeerError, match=rf"{file}: tensor '{name}' has shape \[3, 256\], expected \[16, 256\]"):
        with_other.load_adapter(EVALUATOR, file.parent)
    assert with_other.adapter_names == [REPROMPTER]


def test_adapter_misuse_raises(tmp_path, umm):
    with pytest.raises(SeerError, match="not found"):
        umm.activate_adapter(EVALUATOR)
    umm.add_adapter(EVALUATOR)
    with pytest.raises(SeerError, match="already exists"):
        umm.add_adapter(EVALUATOR)
    with pytest.raises(SeerError, match="identifier"):
        umm.add_adapter("my.role")
    with pytest.raises(SeerError, match="not found"), umm.use_adapter(REPROMPTER):
        pass
    with pytest.raises(SeerError, match="adapter_config.json: file not found"):
        umm.load_adapter(REPROMPTER, tmp_path)
