"""Parity of seer's Harmon port with the reference implementation (github.com/wusize/Harmon), float32 on the CPU.

    python benchmarks/harmon_parity.py --reference /path/to/Harmon [--site /path/to/timm-einops-scipy]

The reference code is not part of this repository: clone (or unpack) wusize/Harmon anywhere and point ``--reference``
at it. It needs timm 0.9.12 (the version Harmon pins), einops and scipy importable, e.g.
``pip install --target /tmp/parity_site --no-deps timm==0.9.12 einops scipy`` and ``--site /tmp/parity_site``.

Both models are built at one small configuration (a 2-layer Qwen2 with a word-level tokenizer, a 2+2-block MAR with
a 2-block diffusion head at 10 sampling steps, and the real KL-16 VAE; 64 px images, so MAR's 2x2 position tables
are resized to a 4x4 grid as Harmon's 16x16 tables are at 512 px). Every weight is drawn at random (no layer left
at zero), and seer's state dict is loaded into the reference with ``strict=True``: the parameter names and shapes
are the same. Randomness is shared by construction: the reference's ``sample_orders`` returns seer's orders and its
``torch.randn`` / ``randn_like`` return the noise seer used for the same tokens, in the same order.

What is stubbed or shimmed, and why (none of it touches the arithmetic compared):

- ``mmengine.registry.Registry`` (imported by the reference's ``src/builder.py``): a two-line builder;
- ``torchvision`` (imported by timm's package ``__init__``, unused by ``Block``): an empty module tree;
- ``Tensor.cuda`` -> identity (the reference hard-codes ``.cuda()`` in its diffusion sampler);
- transformers 5 API renames the reference predates: ``DynamicCache.from_legacy_cache``, ``output.past_key_values``
  and Harmon's ``curtail_cache`` (the cache is cropped with ``crop``).

Printed: the maximum relative error ``max|seer - reference| / max|reference|`` of each compared output.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-4


def install_stubs(reference: Path, site: Path | None) -> None:
    """Make the reference importable without mmengine, torchvision or a GPU (see the module docstring)."""
    if site is not None:
        sys.path.insert(0, str(site))
    sys.path.insert(0, str(reference))

    class Registry:
        def __init__(self, name: str) -> None:
            self.name = name

        def build(self, cfg):  # a module passed as it is, or dict(type=callable, **kwargs)
            if isinstance(cfg, dict):
                cfg = dict(cfg)
                return cfg.pop("type")(**cfg)
            return cfg

    mmengine = types.ModuleType("mmengine")
    registry = types.ModuleType("mmengine.registry")
    registry.Registry = Registry
    mmengine.registry = registry
    sys.modules.update({"mmengine": mmengine, "mmengine.registry": registry})

    class Placeholder(type):  # any attribute of a placeholder class is another placeholder class
        def __getattr__(cls, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return Placeholder(attr, (), {})

    class EmptyModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """While timm is imported, any ``torchvision.*`` import gets an empty module of placeholder classes."""

        def find_spec(self, name, path, target=None):
            if name == "torchvision" or name.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            module.__file__ = f"<stub {spec.name}>"

            def attribute(attr):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return Placeholder(attr, (), {})

            module.__getattr__ = attribute
            return module

        def exec_module(self, module):
            return None

    import seer.models.harmon  # noqa: F401 - transformers decides now, before the stub, that torchvision is absent

    finder = EmptyModules()
    sys.meta_path.insert(0, finder)
    import timm.models.vision_transformer  # noqa: F401 - the one place that needs the stub

    sys.meta_path.remove(finder)
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the reference's hard-coded .cuda()

    from transformers import DynamicCache
    from transformers.modeling_outputs import BaseModelOutputWithPast

    DynamicCache.from_legacy_cache = classmethod(lambda cls, past=None: cls())
    BaseModelOutputWithPast.past_key_values = property(lambda self: self.cache)


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |theirs|."""
    return float((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max().clamp(min=1e-30))


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter at random (norm weights around 1): no zero-initialised layer hides a difference."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if p.ndim == 1 and ("norm" in name or "_ln" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * noise)
            elif p.ndim >= 2:
                fan_in = int(np.prod(p.shape[1:])) if p.ndim > 1 else p.shape[0]
                p.copy_(noise / max(1.0, fan_in**0.5))
            else:
                p.copy_(0.05 * noise)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of github.com/wusize/Harmon")
    parser.add_argument("--site", type=Path, default=None, help="extra site dir with timm 0.9.12, einops, scipy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.reference / "src" / "models" / "harmon.py").is_file():
        print(f"error: {args.reference}: not a Harmon checkout (no src/models/harmon.py)", file=sys.stderr)
        return 2
    install_stubs(args.reference, args.site)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    import src.models.harmon as ref_harmon_module  # the reference
    import src.models.mar.diffloss as ref_diffloss_module
    import src.models.mar.diffusion.gaussian_diffusion as ref_gd_module
    from PIL import Image
    from src.models.mar.mar import MAR as RefMAR
    from src.models.mar.vae import AutoencoderKL as RefVAE

    from seer.models.harmon import (
        HarmonProcessor,
        HarmonShape,
        HarmonUMM,
        latent_grid,
        to_pixels,
    )

    # ---- the small configuration, ours ----
    shape = HarmonShape(
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True),
        mar=dict(img_size=32, vae_stride=16, patch_size=1, vae_embed_dim=16, buffer_size=4, encoder_embed_dim=64,
                 encoder_depth=2, encoder_num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4,
                 class_num=10, diffloss_d=2, diffloss_w=64, num_sampling_steps=10),
        image_size=64,
        vocab_size=None,
    )  # fmt: skip
    umm = HarmonUMM.from_shape(shape, seed=args.seed, num_iterations=4)
    ours = umm.harmon.eval()
    randomize(ours, args.seed)
    tokenizer = umm.tokenizer
    processor: HarmonProcessor = umm.processor

    # ---- the reference at the same configuration, with our weights ----
    mar_kwargs = dict(shape.mar)
    steps = mar_kwargs.pop("num_sampling_steps")
    ref_mar = RefMAR(**mar_kwargs, mlp_ratio=4.0, attn_dropout=0.1, proj_dropout=0.1,
                     norm_layer=__import__("functools").partial(torch.nn.LayerNorm, eps=1e-6),
                     num_sampling_steps=str(steps), grad_checkpointing=False)  # fmt: skip
    ref_vae = RefVAE(embed_dim=16, ch_mult=(1, 1, 2, 2, 4))
    llm = type(ours.llm)(ours.config.text_config)
    prompt_template = dict(INSTRUCTION="<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n")
    ref = ref_harmon_module.Harmon(vae=ref_vae, vae_scale=0.2325, llm=llm, mar=ref_mar, tokenizer=tokenizer,
                                   prompt_template=prompt_template).eval()  # fmt: skip
    missing = ref.load_state_dict(ours.state_dict(), strict=True)
    print(f"state dict: {len(ours.state_dict())} tensors, loaded into the reference with strict=True ({missing})")
    ref.curtail_cache = lambda cache, length: cache.crop(length - cache.get_seq_length())
    results: dict[str, float] = {}

    # ---- understanding: pixels, visual tokens, logits (two prompts, two images each) ----
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48 + 16 * i, 64, 3), dtype=np.uint8))
        for i in range(4)
    ]
    sys.modules.setdefault("mmengine.config", types.ModuleType("mmengine.config")).Config = object
    sys.path.insert(0, str(args.reference / "scripts"))
    from image2text import expand2square  # the reference's preprocessing

    ref_pixels = []
    for img in images:
        square = expand2square(img.convert("RGB"), (127, 127, 127)).resize(size=(64, 64))
        tensor = torch.from_numpy(np.array(square)).float().permute(2, 0, 1)
        ref_pixels.append(2 * (tensor / 255) - 1)
    ref_pixels = torch.stack(ref_pixels)
    our_pixels = torch.stack([to_pixels(img, 64) for img in images])
    results["image preprocessing (pixels)"] = relative_error(our_pixels, ref_pixels)

    questions = ["describe the first image", "describe the second image"]
    texts = [umm.format_prompt(q, 2) for q in questions]
    batch = processor(text=texts, images=[images[:2], images[2:]], return_tensors="pt")
    assert bool(batch["attention_mask"].all()), "the parity prompts are chosen to need no padding"
    with torch.no_grad():
        our_logits = ours(**batch).logits
        _, z_enc = ref.extract_visual_feature(ref.encode(ref_pixels))
        image_token = ours.config.image_token_id
        ids = batch["input_ids"]
        embeds = z_enc.new_zeros(*ids.shape, ours.config.text_config.hidden_size)
        embeds[ids == image_token] = z_enc.flatten(0, 1)  # scripts/image2text.py's merge
        embeds[ids != image_token] = ref.llm.get_input_embeddings()(ids[ids != image_token])
        ref_logits = ref.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
        our_features = ours.image_features(our_pixels)
    results["understanding: visual tokens (VAE + MAR encoder + proj_in)"] = relative_error(our_features, z_enc)
    results["understanding: LLM logits, 2 prompts x 2 images"] = relative_error(our_logits, ref_logits)

    # ---- the diffusion head alone ----
    generator = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(12, 16, generator=generator)
    c = torch.randn(12, 64, generator=generator)
    t = torch.randint(0, 1000, (12,), generator=generator)
    with torch.no_grad():
        results["diffusion head: network output"] = relative_error(
            ours.mar.diffloss.net(x, t, c), ref.mar.diffloss.net(x, t, c)
        )
        half = torch.cat([x[:6], x[:6]])
        from seer.models.harmon_diffusion import guided_output

        ref_cfg = ref.mar.diffloss.net.forward_with_cfg(half, t, c, 3.0)[:6]
        our_cfg = guided_output(ours.mar.diffloss.net(half, t, c), 16, 3.0)
        results["diffusion head: CFG combination (forward_with_cfg)"] = relative_error(our_cfg, ref_cfg)

    # ---- generation: MAR sampler + diffusion head + VAE decode, with shared randomness ----
    recorded: list[torch.Tensor] = []
    our_sample = ours.mar.diffloss.sample

    def recording_sample(z, noise, temperature=1.0, cfg=1.0):
        recorded.append(noise.clone())
        return our_sample(z, noise, temperature, cfg)

    ours.mar.diffloss.sample = recording_sample
    prompts = ["a red circle", "a small blue square on the left"]
    seeds = [11, 12]
    grid = latent_grid((64, 64), 16)
    for iterations in (1, 4):
        recorded.clear()
        latents = umm.sample_latents(prompts, seeds=seeds, guidance_scale=3.0, num_iterations=iterations)
        with torch.no_grad():
            our_images = ours.decode_latents(latents.clone(), grid)
        from seer.models.harmon import generation_orders

        orders = generation_orders(seeds, grid[0] * grid[1])
        ref_mar.sample_orders = lambda bsz, seq_len=None, o=orders: torch.cat([o, o])
        queue = list(recorded)
        ref_diffloss_module.torch, ref_gd_module.th = noise_proxies(queue)
        ids, mask = reference_prompt_ids(tokenizer, prompt_template, prompts, "Generate an image.")
        with torch.no_grad():
            ref_images = ref.sample(input_ids=ids, attention_mask=mask, num_iter=iterations, cfg=3.0,
                                    cfg_schedule="constant", temperature=1.0, image_shape=grid)  # fmt: skip
        ref_diffloss_module.torch, ref_gd_module.th = torch, torch
        if queue:
            raise RuntimeError(f"the reference drew noise {len(recorded) - len(queue)} times, seer {len(recorded)}")
        label = "one MAR step" if iterations == 1 else f"{iterations} MAR steps"
        name = f"generation: {label} (CFG 3, 10-step head) -> decoded pixels"
        results[name] = relative_error(our_images, ref_images)

    width = max(len(k) for k in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value:.2e}  {'ok' if value <= TOLERANCE else 'ABOVE 1e-4'}")
    return 0 if all(v <= TOLERANCE for v in results.values()) else 1


def noise_proxies(queue: list[torch.Tensor]) -> tuple[object, object]:
    """Stand-ins for the reference's ``torch`` (diffloss) and ``th`` (gaussian_diffusion) modules.

    ``torch.randn`` starts a diffusion chain: it takes seer's next recorded noise (N, T + 1, C) and returns its
    column 0; the k-th ``th.randn_like`` of that chain returns column k for the conditional half (the reference's
    unconditional half is thrown away). Everything else is the real torch.
    """
    state: dict[str, object] = {}

    class TorchProxy:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def randn(*shape, **kwargs):
            state["noise"], state["k"] = queue.pop(0), 0
            return state["noise"][:, 0].clone()

    class ThProxy:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def randn_like(x):
            state["k"] += 1
            step = state["noise"][:, state["k"]]
            return torch.cat([step, torch.zeros_like(step)])

    return TorchProxy(), ThProxy()


def reference_prompt_ids(tokenizer, template: dict, prompts: list[str], cfg_prompt: str):
    """The reference's prepare_text_conditions for a batch: [cond x B, uncond x B], right-padded with EOS."""
    from torch.nn.utils.rnn import pad_sequence

    texts = [template["INSTRUCTION"].format(input=f"Generate an image: {p}") for p in prompts]
    texts += [template["INSTRUCTION"].format(input=cfg_prompt)] * len(prompts)
    ids = [tokenizer.encode(t, add_special_tokens=True, return_tensors="pt")[0] for t in texts]
    lengths = [len(i) for i in ids]
    padded = pad_sequence(ids, batch_first=True, padding_value=tokenizer.eos_token_id)
    mask = torch.zeros_like(padded).bool()
    for i, length in enumerate(lengths):
        mask[i, :length] = True
    return padded, mask


if __name__ == "__main__":
    raise SystemExit(main())
