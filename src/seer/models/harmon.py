"""The ``harmon`` backend: `UnifiedModel` over Harmon (arXiv 2503.21979), SEER's base model, in plain PyTorch.

Harmon = a Qwen2.5-Instruct language model (transformers' ``Qwen2ForCausalLM``) + MAR's masked encoder/decoder and
diffusion head (`seer.models.harmon_mar`, `seer.models.harmon_diffusion`) + MAR's frozen KL-16 VAE
(`seer.models.harmon_vae`), glued by two MLPs (``proj_in``: MAR -> LLM, ``proj_out``: LLM -> MAR). Harmon-1.5B is
Qwen2.5-1.5B-Instruct + MAR-Huge, Harmon-0.5B Qwen2.5-0.5B-Instruct + MAR-Base.

    umm = HarmonUMM.from_shape("harmon-tiny", seed=0)             # random weights, word-level tokenizer (tests)
    umm = HarmonUMM.from_pretrained("checkpoints/harmon-1.5b")      # made by `python -m seer.models.harmon convert`
    with umm.no_adapter():
        out = umm.generate_images(["a red circle"], seeds=[7])        # CFG 3.0, 64 MAR iterations, 512 px

- **Understanding**: an image is padded to a square with grey (127, 127, 127), resized to ``image_size`` (bicubic),
  scaled to [-1, 1], encoded by the VAE (posterior mean x 0.2325), then by the MAR encoder with nothing masked; with
  ``proj_in`` that gives (image_size / 16)^2 + 64 = 1,088 LLM tokens at 512 px, the 64 buffer tokens last. They
  replace the ``<image>`` placeholders, one run of 1,088 per image, in order. Prompts are Harmon's chat format,
  ``<|im_start|>user\\n<image>\\n...question<|im_end|>\\n<|im_start|>assistant\\n`` (no default system prompt).
- **Generation**: MAR's iterative sampler. The prompt ``"Generate an image: {prompt}"`` (CFG negative:
  ``"Generate an image."``) runs once through the LLM into a KV cache; each of ``num_iterations`` (64) steps encodes
  the tokens sampled so far, runs them through the LLM after the cached prompt, adds ``proj_out`` of the result to the
  encoder output, decodes a condition for every masked token and samples the tokens due at this step (cosine
  schedule, random order) with the diffusion head (100 DDPM steps, CFG on the head's epsilon). Harmon's defaults:
  CFG 3.0 constant, temperature 1.0, 512 px.
- **Weights**: parameter names and shapes are those of the official checkpoints (``llm.*``, ``mar.*``, ``proj_in.*``,
  ``proj_out.*``, and ``vae.*`` from MAR's ``kl16.ckpt``); ``convert`` (below) turns them into a safetensors directory.
- **Roles**: as for every backend, LoRA adapters on the LLM's attention; the generator is the model with adapters off.

Departures from the reference (github.com/wusize/Harmon), each deliberate:

- Device-agnostic (no ``.cuda()``), PyTorch SDPA attention everywhere, no xtuner / mmengine / flash-attn, no remote
  code; the LLM is transformers' own Qwen2.
- Per-sample seeds: each sample's generation order and diffusion noise come from its own generator (noise is indexed
  by token position), so sample i depends only on its prompt and seed; the reference draws from global RNGs.
- Prompts are left-padded (positions follow the attention mask); the reference right-pads. Same numbers.
- The MAR modules and the VAE always run in eval mode (no dropout), also while the LLM trains: SEER never trains the
  visual side, and a judge or generator must be deterministic inside a training step.
- The understanding path does not scale the MAR encoder's gradient by 0.1: the visual side is frozen here.

    python -m seer.models.harmon convert --checkpoint harmon_1.5b.pth --vae kl16.ckpt \\
        --llm Qwen2.5-1.5B-Instruct --shape harmon-1.5b --out checkpoints/harmon-1.5b
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import PeftModel
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BatchFeature,
    DynamicCache,
    GenerationConfig,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.image_processing_utils import ImageProcessingMixin
from transformers.modeling_outputs import CausalLMOutputWithPast

from seer.errors import SeerError
from seer.models import adapters
from seer.models.adapters import LANGUAGE_MODEL_ATTENTION, LoraSettings
from seer.models.base import (
    ImageGeneration,
    ImagesPerSample,
    TextGeneration,
    TokenLogProbs,
    check_safetensors_shapes,
    completion_logprobs,
    with_response_prefix,
)
from seer.models.base import position_ids as position_ids_of  # `position_ids` is a forward argument here
from seer.models.harmon_mar import MAR, masked_count, next_mask
from seer.models.harmon_vae import AutoencoderKL
from seer.models.janus import sample_tokens, seeded_uniforms
from seer.models.tokenizer import DEFAULT_WORDS, build_word_tokenizer

IMAGE_TOKEN = "<image>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
GENERATION_TEMPLATE = "Generate an image: {prompt}"  # Harmon's scripts/text2image.py
CFG_PROMPT = "Generate an image."  # its CFG negative prompt
DEFAULT_GUIDANCE_SCALE = 3.0
DEFAULT_NUM_ITERATIONS = 64
VAE_SCALE = 0.2325
GREY = (127, 127, 127)  # expand2square's fill
# Harmon's prompt_template (configs/models/*.py): Qwen's chat format without Qwen's default system prompt. Images are
# "<image>\n" before the text, as in scripts/image2text.py.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\\n' }}"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# LoRA roles on the LLM's attention (the MAR blocks' "attn.qkv"/"attn.proj" and the VAE's q/k/v are not matched).
HARMON_LLM_ATTENTION = r".*llm\.model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"
# The word-level tokenizer of random-weight shapes also needs the chat markers and the image placeholder.
HARMON_WORDS: tuple[str, ...] = (IM_START, IM_END, IMAGE_TOKEN, "Generate", "an", "image", ".", ":")
WEIGHTS_NAME = "model.safetensors"


# ---------------------------------------------------------------------------------------------------------------
# Shapes and config


@dataclass(frozen=True)
class HarmonShape:
    """Architecture numbers of a named Harmon size; ``from_shape`` builds it with random weights."""

    text: dict[str, Any]  # Qwen2Config fields
    mar: dict[str, Any]  # MAR fields (seer.models.harmon_mar.MAR)
    vae: dict[str, Any] = field(default_factory=dict)  # AutoencoderKL fields beyond KL-16's
    image_size: int = 512
    vocab_size: int | None = 151936  # None: exactly the word tokenizer's size


_QWEN = dict(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
# configs/models/qwen2_5_{0_5b,1_5b}_kl16_mar_{b,h}.py: MAR at img_size 256 (a 16x16 position table, resized),
# 64 buffer tokens, dropout 0.1, diffusion head 6x1024 (base) or 12x1536 (huge), 100 sampling steps.
_MAR = dict(img_size=256, vae_stride=16, patch_size=1, vae_embed_dim=16, buffer_size=64, num_sampling_steps=100)
SHAPES: dict[str, HarmonShape] = {
    "harmon-tiny": HarmonShape(
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True),
        # a 4x4 position table resized to the 8x8 grid of a 32 px image (stride 4), as 16x16 -> 32x32 in Harmon
        mar=dict(img_size=16, vae_stride=4, patch_size=1, vae_embed_dim=4, buffer_size=4, encoder_embed_dim=32,
                 encoder_depth=1, encoder_num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
                 class_num=10, diffloss_d=1, diffloss_w=32, num_sampling_steps=5),
        vae=dict(embed_dim=4, ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, resolution=32,
                 encoder_attn_resolutions=(8,)),
        image_size=32,
        vocab_size=None,
    ),
    "harmon-0.5b": HarmonShape(
        text=dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, **_QWEN),
        mar=dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12, decoder_embed_dim=768,
                 decoder_depth=12, decoder_num_heads=12, diffloss_d=6, diffloss_w=1024, **_MAR),
    ),
    "harmon-1.5b": HarmonShape(
        text=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, **_QWEN),
        mar=dict(encoder_embed_dim=1280, encoder_depth=20, encoder_num_heads=16, decoder_embed_dim=1280,
                 decoder_depth=20, decoder_num_heads=16, diffloss_d=12, diffloss_w=1536, **_MAR),
    ),
}  # fmt: skip


class HarmonConfig(PreTrainedConfig):
    """Harmon's configuration: the Qwen2 ``text_config``, MAR and VAE fields, and the glue's constants."""

    model_type = "harmon"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2")}

    text_config: dict | PreTrainedConfig | None = None
    mar_config: dict | None = None
    vae_config: dict | None = None
    vae_scale: float = VAE_SCALE
    image_size: int = 512
    image_token_id: int = 151665  # "<image>" added to Qwen2.5's tokenizer, as Harmon's scripts do
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False  # the LLM's own config ties its head (Qwen2.5 small models do)

    @property
    def num_image_tokens(self) -> int:
        """LLM tokens per image: the latent grid plus MAR's buffer tokens (1,088 at 512 px)."""
        mar = self.mar_config
        stride = 2 ** (len(self.vae_config.get("ch_mult", (1, 1, 2, 2, 4))) - 1)
        grid = self.image_size // stride // mar["patch_size"]
        return grid * grid + mar["buffer_size"]


def build_config(shape: HarmonShape, tokenizer: Any) -> HarmonConfig:
    """The ``HarmonConfig`` of ``shape`` for ``tokenizer``; checks that the VAE stride and MAR's agree."""
    vae = {"embed_dim": 16, "ch": 128, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2, "resolution": 256,
           "encoder_attn_resolutions": (16,), "decoder_attn_resolutions": (), **shape.vae}  # fmt: skip
    vae["ch_mult"] = list(vae["ch_mult"])
    vae["encoder_attn_resolutions"] = list(vae["encoder_attn_resolutions"])
    vae["decoder_attn_resolutions"] = list(vae["decoder_attn_resolutions"])
    stride = 2 ** (len(vae["ch_mult"]) - 1)
    if stride != shape.mar["vae_stride"] or vae["embed_dim"] != shape.mar["vae_embed_dim"]:
        raise SeerError(f"shape: VAE stride/channels {stride}/{vae['embed_dim']} != MAR's vae_stride/vae_embed_dim")
    if shape.image_size % (stride * shape.mar["patch_size"]):
        raise SeerError(f"shape: image_size {shape.image_size} is not a multiple of the latent stride {stride}")
    text = Qwen2Config(
        vocab_size=shape.vocab_size or len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape.text,
    )
    return HarmonConfig(
        text_config=text,
        mar_config=dict(shape.mar),
        vae_config=vae,
        image_size=shape.image_size,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )


# ---------------------------------------------------------------------------------------------------------------
# The model (a transformers PreTrainedModel, so that TRL and PEFT can drive it)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Harmon's ``build_mlp``: Linear -> SiLU -> Linear (``proj_in`` / ``proj_out``)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))


class _Backbone(nn.Module):
    """The LLM with images merged in (returns ``last_hidden_state``): what TRL's fused LM head calls ``base_model``.

    A view on the Harmon model, not a child of it (it holds no parameters of its own).
    """

    def __init__(self, owner: HarmonForConditionalGeneration) -> None:
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not registered: the owner's state dict must not change

    def forward(self, **kwargs: Any) -> Any:
        return self._owner.language_forward(**kwargs)


class HarmonForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """Harmon's modules under the reference's names: ``vae``, ``llm``, ``mar``, ``proj_in``, ``proj_out``.

    ``forward`` is a causal LM over text with images (``pixel_values`` fill the ``image_token_id`` positions);
    ``generate`` is transformers' text generation. Image generation lives in `HarmonUMM.sample_latents`.
    """

    config_class = HarmonConfig
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Qwen2DecoderLayer", "Block"]

    def __init__(self, config: HarmonConfig) -> None:
        super().__init__(config)
        self.vae = AutoencoderKL(**config.vae_config)
        self.llm = Qwen2ForCausalLM(config.text_config)
        self.mar = MAR(**config.mar_config)
        hidden, width = config.text_config.hidden_size, self.mar.encoder_embed_dim
        self.proj_in = _mlp(width, hidden, hidden)
        self.proj_out = _mlp(hidden, hidden, width)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Random-weight shapes: normal(0, initializer_range) weights, zero biases, unit norms.

        Unlike MAR's own init this leaves no layer at zero (the diffusion head's output layer included), so a
        random model's images depend on its prompt, seed and guidance, which the tests check.
        """
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                module.weight.fill_(1.0)
                module.bias.zero_()
        elif isinstance(module, MAR):
            for p in (module.fake_latent, module.mask_token, module.encoder_pos_embed_learned,
                      module.decoder_pos_embed_learned, module.diffusion_pos_embed_learned):  # fmt: skip
                p.normal_(0.0, std)
        elif type(module).__name__.endswith("RMSNorm"):
            module.weight.fill_(1.0)

    def train(self, mode: bool = True) -> HarmonForConditionalGeneration:
        """Train mode for the LLM and the glue only: MAR and the VAE stay in eval mode (no dropout), see the module."""
        super().train(mode)
        self.mar.eval()
        self.vae.eval()
        return self

    @property
    def base_model(self) -> nn.Module:
        """The LLM with images merged in (see `_Backbone`); TRL's fused LM head runs it, then ``lm_head``."""
        if "_backbone_view" not in self.__dict__:
            self.__dict__["_backbone_view"] = _Backbone(self)
        return self.__dict__["_backbone_view"]

    def get_input_embeddings(self) -> nn.Module:
        return self.llm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.llm.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.llm.lm_head

    # ---- images -> LLM tokens ----

    def encode_latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """VAE latents (B, h*w, C*p*p) of pixels (B, 3, H, W) in [-1, 1]: posterior mean x vae_scale, patchified."""
        z = self.vae.encode_mean(pixel_values.to(self.vae.quant_conv.weight.dtype)) * self.config.vae_scale
        return patchify(z, self.mar.patch_size)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """LLM input embeddings (B, h*w + buffer, hidden) of images: MAR-encoded, nothing masked, buffers last."""
        latents = self.encode_latents(pixel_values)
        grid = latent_grid(pixel_values.shape[-2:], self.vae.stride * self.mar.patch_size)
        encoded = self.mar.forward_mae_encoder(latents, latents.new_zeros(latents.shape[:2]), grid)
        return buffers_last(self.proj_in(encoded), self.mar.buffer_size)

    def merge_images(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings (B, T, hidden) with the image features written over the ``image_token_id`` positions."""
        is_image = input_ids == self.config.image_token_id
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
        if pixel_values is None:
            if bool(is_image.any()):
                raise SeerError(f"input_ids hold {int(is_image.sum())} image tokens but no pixel_values were given")
            return embeds
        features = self.image_features(pixel_values)  # (N, per image, hidden)
        if int(is_image.sum()) != features.shape[0] * features.shape[1]:
            raise SeerError(
                f"input_ids hold {int(is_image.sum())} image tokens; {features.shape[0]} image(s) of "
                f"{features.shape[1]} tokens were given"
            )
        return embeds.masked_scatter(is_image[..., None], features.to(embeds.dtype))

    def language_forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """The LLM's hidden states over text and images; positions follow the attention mask (left padding)."""
        if inputs_embeds is None:
            inputs_embeds = self.merge_images(input_ids, pixel_values)
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            position_ids = position_ids_of(attention_mask)[:, -inputs_embeds.shape[1] :]
        return self.llm.model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Next-token logits (B, T or logits_to_keep, V) over text with images (``pixel_values`` (N, 3, S, S))."""
        out = self.language_forward(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, pixel_values=pixel_values,
            inputs_embeds=inputs_embeds, cache=cache, use_cache=use_cache, **kwargs,
        )  # fmt: skip
        hidden = out.last_hidden_state
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.llm.lm_head(hidden[:, kept])
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)

    # ---- image generation pieces ----

    def refine_with_llm(
        self, tokens: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int], cache: DynamicCache,
        prompt_mask: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """One MAR step's encoder side: encode unmasked tokens, run them after the cached prompt, add proj_out.

        ``tokens`` (R, h*w, C) and ``mask`` (R, h*w, 1 = masked) per row; ``cache`` holds the prompts (R rows,
        ``prompt_mask`` (R, P)) and is cropped back to them afterwards. Returns (R, buffer + unmasked, D_enc).
        """
        encoded = self.mar.forward_mae_encoder(tokens, mask, grid)
        z = buffers_last(self.proj_in(encoded), self.mar.buffer_size)
        prefix = cache.get_seq_length()
        full_mask = torch.cat([prompt_mask, prompt_mask.new_ones(z.shape[:2])], dim=1)
        hidden = self.llm.model(
            inputs_embeds=z.to(self.llm.dtype),
            attention_mask=full_mask,
            position_ids=position_ids_of(full_mask)[:, -z.shape[1] :],
            cache=cache,
            use_cache=True,
        ).last_hidden_state
        cache.crop(prefix - cache.get_seq_length())  # a negative count: drop the image tokens again
        return encoded + self.proj_out(buffers_first(hidden, self.mar.buffer_size).to(encoded.dtype))

    def decode_latents(self, latents: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Pixels (B, 3, H, W), roughly in [-1, 1], of token latents (B, h*w, C*p*p)."""
        z = unpatchify(latents, grid, self.mar.patch_size) / self.config.vae_scale
        return self.vae.decode(z.to(self.vae.post_quant_conv.weight.dtype))


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers


def patchify(z: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), C*p*p), channel-major within a patch (the reference's rearrange)."""
    b, c, h, w = z.shape
    z = z.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(x: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """The inverse of `patchify`: (B, h*w, C*p*p) -> (B, C, h*p, w*p)."""
    b, (h, w) = x.shape[0], grid
    c = x.shape[-1] // (patch * patch)
    x = x.reshape(b, h, w, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h * patch, w * patch)


def latent_grid(pixel_size: Sequence[int], stride: int) -> tuple[int, int]:
    """The token grid (h, w) of an image of ``pixel_size`` (H, W)."""
    return int(pixel_size[0]) // stride, int(pixel_size[1]) // stride


def buffers_last(z: torch.Tensor, buffer: int) -> torch.Tensor:
    """MAR puts its buffer tokens first; Harmon feeds them to the LLM after the image tokens."""
    return torch.cat([z[:, buffer:], z[:, :buffer]], dim=1)


def buffers_first(z: torch.Tensor, buffer: int) -> torch.Tensor:
    """The inverse of `buffers_last`."""
    return torch.cat([z[:, -buffer:], z[:, :-buffer]], dim=1)


def expand_to_square(image: Image.Image, fill: tuple[int, int, int] = GREY) -> Image.Image:
    """Pad ``image`` to a square, centred, with ``fill`` (Harmon's ``expand2square``)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def to_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """(3, size, size) float32 in [-1, 1]: grey-padded to a square, bicubic resize, ``2 * x / 255 - 1``."""
    square = expand_to_square(image.convert("RGB")).resize((size, size), Image.BICUBIC)
    values = torch.from_numpy(np.asarray(square, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return 2 * (values / 255) - 1


def to_pil_images(pixels: torch.Tensor) -> list[Image.Image]:
    """RGB images from decoder pixels (B, 3, H, W): ``clamp(127.5 x + 128, 0, 255)`` truncated to uint8 (Harmon's)."""
    values = torch.clamp(127.5 * pixels.float() + 128.0, 0, 255).to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(v.permute(1, 2, 0).cpu().numpy())) for v in values]


def generation_orders(seeds: Sequence[int], seq_len: int) -> torch.Tensor:
    """(B, L) random token orders, row i from a generator seeded with ``seeds[i]`` (on the CPU, so on any device)."""
    return torch.stack([torch.randperm(seq_len, generator=_generator(s, "order")) for s in seeds])


def diffusion_noise(seeds: Sequence[int], seq_len: int, steps: int, channels: int) -> torch.Tensor:
    """(B, L, steps + 1, C) standard normal noise: row i from its own seed, indexed by token position."""
    return torch.stack([torch.randn(seq_len, steps + 1, channels, generator=_generator(s, "noise")) for s in seeds])


def _generator(seed: int, stream: str) -> torch.Generator:
    # two independent streams per seed: the order does not shift when the noise tensor changes shape
    offset = {"order": 0, "noise": 1}[stream]
    return torch.Generator().manual_seed((int(seed) * 2 + offset) % (2**63))


def guidance_at(step_masked: int, seq_len: int, scale: float, schedule: str) -> float:
    """The CFG scale of a MAR step: constant, or Muse's linear ramp ``1 + (g - 1) * (L - masked) / L``."""
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return 1 + (scale - 1) * (seq_len - step_masked) / seq_len
    raise SeerError(f"cfg_schedule: expected 'constant' or 'linear', got {schedule!r}")


def _flatten_images(images: Any) -> list[Image.Image]:
    if images is None:
        return []
    if isinstance(images, Image.Image):
        return [images]
    return [img for item in images for img in _flatten_images(item)]


# ---------------------------------------------------------------------------------------------------------------
# Processor (for TRL: chat template, placeholders, pixels)


class HarmonImageProcessor(ImageProcessingMixin):
    """Harmon's image preprocessing (`to_pixels`): grey square padding, bicubic resize, [-1, 1]."""

    model_input_names = ["pixel_values"]

    def __init__(self, size: int = 512, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size

    def __call__(self, images: Any, return_tensors: str | None = None, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` (N, 3, size, size) of all images, nested lists flattened in order."""
        flat = _flatten_images(images)
        if not flat:
            raise SeerError("images: expected at least one PIL image")
        return BatchFeature({"pixel_values": torch.stack([to_pixels(img, self.size) for img in flat])})


class HarmonProcessor(ProcessorMixin):
    """Tokenizer + `HarmonImageProcessor` + Harmon's chat template; each ``<image>`` becomes its run of tokens."""

    def __init__(
        self, image_processor: HarmonImageProcessor, tokenizer: Any, chat_template: str | None = None,
        num_image_tokens: int = 1088, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.num_image_tokens = num_image_tokens
        self.image_token = IMAGE_TOKEN
        super().__init__(image_processor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE)

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Any = None,
        padding: bool | str | None = None,
        return_tensors: str | None = None,
        add_special_tokens: bool = True,
        **kwargs: Any,
    ) -> BatchFeature:
        """``input_ids``/``attention_mask`` with image placeholders expanded, and ``pixel_values``.

        ``padding`` None (the default) left-pads only when tensors are asked for (``return_tensors``); lists stay
        ragged, one unpadded list per prompt, as TRL's GRPOTrainer reads them: it pads prompts itself and marks only
        its own padding in the attention mask, so a padded list would show the pad tokens to the model as prompt
        tokens (and, with random weights, make the gradient NaN: a pad token's embedding is zero). Other
        tokenizer/processor keyword arguments (TRL passes a few) have no effect here.
        """
        if padding is None:
            padding = return_tensors is not None
        if text is None:
            raise SeerError("text: expected one prompt or a list of prompts")
        texts = [text] if isinstance(text, str) else list(text)
        flat = _flatten_images(images)
        placeholders = sum(t.count(IMAGE_TOKEN) for t in texts)
        if placeholders != len(flat):
            raise SeerError(f"prompts hold {placeholders} {IMAGE_TOKEN} placeholder(s), {len(flat)} image(s) given")
        expanded = [t.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_image_tokens) for t in texts]
        encoded = self.tokenizer(
            expanded, padding=padding, padding_side="left", add_special_tokens=add_special_tokens,
            return_tensors=return_tensors,
        )  # fmt: skip
        data = dict(encoded)
        if flat:
            data["pixel_values"] = self.image_processor(flat)["pixel_values"]
        return BatchFeature(data)


# ---------------------------------------------------------------------------------------------------------------
# The backend


class HarmonUMM:
    """A Harmon model, its processor and its LoRA roles, behind the `UnifiedModel` protocol."""

    def __init__(
        self,
        model: HarmonForConditionalGeneration,
        processor: HarmonProcessor,
        *,
        num_iterations: int = DEFAULT_NUM_ITERATIONS,
        cfg_schedule: str = "constant",
    ) -> None:
        self._harmon = model.eval()
        self._peft: PeftModel | None = None
        self._diffusion_sampler: Any = None
        self._processor = processor
        self.tokenizer = processor.tokenizer
        self.image_size: int = model.config.image_size
        self.num_image_tokens: int = model.config.num_image_tokens
        self.num_iterations = num_iterations
        self.cfg_schedule = cfg_schedule
        guidance_at(1, 1, 1.0, cfg_schedule)  # validates the schedule name
        stop = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(IM_END)}
        self.stop_token_ids: list[int] = sorted(t for t in stop if t is not None and t != self.tokenizer.unk_token_id)
        model.generation_config = GenerationConfig(
            bos_token_id=self.tokenizer.bos_token_id,
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    # ---- construction, saving ----

    @classmethod
    def from_shape(
        cls,
        shape: str | HarmonShape = "harmon-tiny",
        seed: int = 0,
        *,
        words: Sequence[str] = DEFAULT_WORDS,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        num_iterations: int | None = None,
    ) -> HarmonUMM:
        """Build a model with random weights (seeded) at a named shape (see `SHAPES`) or a custom `HarmonShape`.

        The tokenizer is a word-level one over ``words`` plus Harmon's chat markers and ``<image>``; for the real
        shapes it is padded to Qwen2.5's 151,936 ids so every table has its real shape (its ids are not Qwen's,
        which does not matter with random weights). ``num_iterations`` defaults to 64, or 4 for ``harmon-tiny``.
        """
        name = shape if isinstance(shape, str) else "custom"
        if isinstance(shape, str):
            if shape not in SHAPES:
                raise SeerError(f"model shape {shape!r}: expected one of {sorted(SHAPES)}")
            shape = SHAPES[shape]
        tokenizer = build_word_tokenizer([*words, *(w for w in HARMON_WORDS if w not in words)], shape.vocab_size)
        config = build_config(shape, tokenizer)
        device = torch.device(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(seed)
            model = HarmonForConditionalGeneration(config).to(dtype)
        processor = HarmonProcessor(HarmonImageProcessor(config.image_size), tokenizer, CHAT_TEMPLATE,
                                    config.num_image_tokens)  # fmt: skip
        iterations = num_iterations or (4 if name == "harmon-tiny" else DEFAULT_NUM_ITERATIONS)
        return cls(model, processor, num_iterations=iterations)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: torch.dtype | str = "auto",
        device: str | torch.device = "cpu",
        num_iterations: int = DEFAULT_NUM_ITERATIONS,
    ) -> HarmonUMM:
        """Load a directory written by ``convert`` or `save_pretrained` (config.json, safetensors, tokenizer files).

        Every tensor's name and shape is checked against config.json before loading; only safetensors are read.
        ``dtype="auto"`` keeps bfloat16 on a GPU and float32 on the CPU.
        """
        path = Path(path)
        if not path.is_dir():
            raise SeerError(f"{path}: not a directory (expected a Harmon checkpoint directory; see `convert`)")
        config = load_config(path)
        device = torch.device(device)
        if dtype == "auto":
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        with torch.device("meta"):
            skeleton = HarmonForConditionalGeneration(config)
        expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
        files = weight_files(path)
        check_safetensors_shapes(files, expected, optional=tied_names(config))
        with device:
            model = HarmonForConditionalGeneration(config).to(dtype)
        for file in files:
            model.load_state_dict(load_file(str(file), device=str(device)), strict=False)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as error:
            raise SeerError(f"{path}: cannot load the tokenizer files ({error})") from error
        add_image_token(tokenizer, config.image_token_id, where=path)
        processor = HarmonProcessor(HarmonImageProcessor(config.image_size), tokenizer, CHAT_TEMPLATE,
                                    config.num_image_tokens)  # fmt: skip
        return cls(model, processor, num_iterations=num_iterations)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the base model (without adapters; tied head stored once), config and tokenizer, atomically."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        state = {
            name.replace(".base_layer", ""): t.detach().contiguous()
            for name, t in self._harmon.state_dict().items()
            if not adapters.is_lora_name(name) and name not in tied_names(self._harmon.config)
        }
        with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}.") as staging:
            written = Path(staging) / "model"
            written.mkdir()
            save_file(state, str(written / WEIGHTS_NAME), metadata={"format": "pt"})
            self._harmon.config.save_pretrained(written)
            self.tokenizer.save_pretrained(written)
            if directory.exists():
                os.replace(directory, Path(staging) / "previous")
            os.replace(written, directory)

    # ---- properties of the protocol ----

    @property
    def module(self) -> torch.nn.Module:
        """The PEFT model once an adapter exists, else the Harmon model itself."""
        return self._peft if self._peft is not None else self._harmon

    @property
    def processor(self) -> HarmonProcessor:
        """Tokenizer, image preprocessing and Harmon's chat template."""
        return self._processor

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self._harmon.llm.get_input_embeddings().weight.device

    @property
    def default_guidance_scale(self) -> float:
        """Harmon's own CFG scale (3.0, scripts/text2image.py)."""
        return DEFAULT_GUIDANCE_SCALE

    @property
    def harmon(self) -> HarmonForConditionalGeneration:
        """The underlying model (LoRA layers, if any, are injected in it and follow the adapter state)."""
        return self._harmon

    @property
    def diffusion_sampler(self) -> Any:
        """What runs the diffusion head's chain in `sample_latents`: on CUDA the graph engine
        (`seer.models.harmon_rollout.GraphedDiffusionSampler`, created on first use), elsewhere the head itself."""
        if self._diffusion_sampler is not None:
            return self._diffusion_sampler
        if self.device.type != "cuda":
            return self._harmon.mar.diffloss
        from seer.models.harmon_rollout import GraphedDiffusionSampler

        self._diffusion_sampler = GraphedDiffusionSampler(self._harmon.mar.diffloss)
        return self._diffusion_sampler

    @diffusion_sampler.setter
    def diffusion_sampler(self, sampler: Any) -> None:
        """Another sampler with `DiffLoss.sample`'s signature, e.g. ``umm.harmon.mar.diffloss`` for the eager chain."""
        self._diffusion_sampler = sampler

    # ---- prompts ----

    def format_prompt(self, text: str, num_images: int = 0, response_prefix: str = "") -> str:
        """One user turn with ``num_images`` image placeholders before ``text``, ready for the assistant's answer
        (which starts with ``response_prefix``, after a space, when one is given: `with_response_prefix`)."""
        content = [{"type": "image"}] * num_images + [{"type": "text", "text": text}]
        return self._processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False,
            chat_template=with_response_prefix(self._processor.chat_template, response_prefix),
        )  # fmt: skip

    def _text_batch(
        self, prompts: Sequence[str], images: ImagesPerSample | None, response_prefix: str = ""
    ) -> dict[str, torch.Tensor]:
        if images is not None and len(images) != len(prompts):
            raise SeerError(f"images: expected one list of images per prompt ({len(prompts)}), got {len(images)}")
        per_sample = images if images is not None else [()] * len(prompts)
        texts = [self.format_prompt(p, len(imgs), response_prefix) for p, imgs in zip(prompts, per_sample)]
        flat = [img for imgs in per_sample for img in imgs]
        batch = self._processor(text=texts, images=flat or None, return_tensors="pt")
        out = {key: batch[key].to(self.device) for key in ("input_ids", "attention_mask")}
        if flat:
            out["pixel_values"] = batch["pixel_values"].to(self.device, self._harmon.dtype)
        return out

    # ---- text ----

    @torch.no_grad()
    def generate_text(
        self,
        prompts: Sequence[str],
        images: ImagesPerSample | None = None,
        *,
        max_new_tokens: int = 64,
        do_sample: bool = True,
        temperature: float = 1.0,
        seeds: Sequence[int] | None = None,
        response_prefix: str = "",
    ) -> TextGeneration:
        """See `UnifiedModel.generate_text` (stops at end-of-sequence or ``<|im_end|>``)."""
        batch = self._text_batch(prompts, images, response_prefix)
        mask = batch["attention_mask"]
        size = mask.shape[0]
        uniforms = _uniforms(seeds, size, max_new_tokens, do_sample, temperature, self.device)
        stop = torch.tensor(self.stop_token_ids, device=self.device)
        pad = self.tokenizer.pad_token_id
        positions = position_ids_of(mask)
        cache = DynamicCache(config=self._harmon.config.text_config)
        out = self.module(**batch, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
        finished = torch.zeros(size, dtype=torch.bool, device=self.device)
        steps: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            token = sample_tokens(out.logits[:, -1], None if uniforms is None else uniforms[:, step], temperature)
            token = token.masked_fill(finished, pad)
            steps.append(token)
            finished |= torch.isin(token, stop)
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(size, 1)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.module(
                input_ids=token[:, None], attention_mask=mask, position_ids=positions, cache=cache, use_cache=True
            )
        generated = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in range(size)]
        token_ids = [_cut_after(row, set(self.stop_token_ids)) for row in generated]
        prompt_ids = [ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"])]
        texts = self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
        return TextGeneration(texts=texts, token_ids=token_ids, prompt_ids=prompt_ids)

    def token_logprobs(
        self,
        prompts: Sequence[str],
        completions: Sequence[str] | Sequence[Sequence[int]],
        images: ImagesPerSample | None = None,
        *,
        temperature: float = 1.0,
    ) -> TokenLogProbs:
        """See `UnifiedModel.token_logprobs`."""
        if len(completions) != len(prompts):
            raise SeerError(f"completions: expected one per prompt ({len(prompts)}), got {len(completions)}")
        batch = self._text_batch(prompts, images)
        ids = [self._completion_ids(c) for c in completions]
        return completion_logprobs(
            self.module, batch, ids, pad_token_id=self.tokenizer.pad_token_id, temperature=temperature
        )

    def _completion_ids(self, completion: str | Sequence[int]) -> list[int]:
        if isinstance(completion, str):
            return self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return [int(t) for t in completion]

    # ---- images ----

    @torch.no_grad()
    def generate_images(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int] | None = None,
        guidance_scale: float | None = None,
        do_sample: bool = True,
        temperature: float = 1.0,
    ) -> ImageGeneration:
        """See `UnifiedModel.generate_images`. ``token_ids`` holds the continuous latents (B, N, 16).

        ``do_sample=False`` adds no noise inside the diffusion head's chain (its mean path); the token order and the
        chain's starting point still come from the seeds (0 for every sample when None).
        """
        if guidance_scale is None:
            guidance_scale = self.default_guidance_scale
        if seeds is None:
            seeds = [0] * len(prompts) if not do_sample else torch.randint(0, 2**62, (len(prompts),)).tolist()
        latents = self.sample_latents(
            prompts, seeds=seeds, guidance_scale=guidance_scale, temperature=temperature if do_sample else 0.0
        )
        grid = latent_grid((self.image_size, self.image_size), self._harmon.vae.stride * self._harmon.mar.patch_size)
        return ImageGeneration(images=to_pil_images(self._harmon.decode_latents(latents, grid)), token_ids=latents)

    def image_prompt_batch(self, prompts: Sequence[str], guided: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and mask of ``"Generate an image: {prompt}"`` turns, then CFG negatives if ``guided``."""
        texts = [self.format_prompt(GENERATION_TEMPLATE.format(prompt=p)) for p in prompts]
        if guided:
            texts += [self.format_prompt(CFG_PROMPT)] * len(prompts)
        batch = self._processor(text=texts, return_tensors="pt")
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    @torch.no_grad()
    def sample_latents(
        self,
        prompts: Sequence[str],
        *,
        seeds: Sequence[int],
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        temperature: float = 1.0,
        num_iterations: int | None = None,
        orders: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token latents (B, h*w, C) by MAR's iterative sampler (Harmon's ``sample``), with CFG and per-sample seeds.

        ``orders`` (B, L) and ``noise`` (B, L, T + 1, C) default to those of `generation_orders` and
        `diffusion_noise` for ``seeds``; the parity script passes the reference's own.
        """
        if guidance_scale < 0:
            raise SeerError(f"guidance_scale: expected >= 0 (1.0 = no guidance), got {guidance_scale}")
        if len(seeds) != len(prompts):
            raise SeerError(f"seeds: expected one per prompt ({len(prompts)}), got {len(seeds)}")
        harmon, mar = self._harmon, self._harmon.mar
        iterations = num_iterations or self.num_iterations
        size, guided = len(prompts), guidance_scale != 1.0
        grid = latent_grid((self.image_size, self.image_size), harmon.vae.stride * mar.patch_size)
        seq_len, channels = grid[0] * grid[1], mar.token_embed_dim
        if orders is None:
            orders = generation_orders(seeds, seq_len)
        if noise is None:
            noise = diffusion_noise(seeds, seq_len, mar.diffloss.schedule.num_steps, channels)
        orders, noise = orders.to(self.device), noise.to(self.device)
        input_ids, prompt_mask = self.image_prompt_batch(prompts, guided)
        cache = DynamicCache(config=harmon.config.text_config)
        harmon.llm.model(
            input_ids=input_ids, attention_mask=prompt_mask, position_ids=position_ids_of(prompt_mask),
            cache=cache, use_cache=True,
        )  # fmt: skip
        tokens = torch.zeros(size, seq_len, channels, device=self.device, dtype=harmon.dtype)
        masked = torch.ones(size, seq_len, dtype=torch.bool, device=self.device)
        for step in range(iterations):
            rows = (lambda t: torch.cat([t, t])) if guided else (lambda t: t)  # CFG rows mirror the samples
            x_enc = harmon.refine_with_llm(rows(tokens), rows(masked).to(tokens.dtype), grid, cache, prompt_mask)
            z = mar.forward_mae_decoder(x_enc, rows(masked).to(tokens.dtype), grid)  # (R, L, D)
            still = masked_count(step, iterations, seq_len, int(masked[0].sum()))
            following = next_mask(orders, still)
            due = masked if step == iterations - 1 else masked & ~following
            masked = following
            if not bool(due.any()):
                continue
            condition = torch.cat([z[:size][due], z[size:][due]]) if guided else z[due]
            scale = guidance_at(still, seq_len, guidance_scale, self.cfg_schedule)
            sampled = self.diffusion_sampler.sample(condition, noise[due], temperature, scale)
            tokens = tokens.masked_scatter(due[..., None], sampled.to(tokens.dtype))
        return tokens

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """VAE token latents (B, N, C) of ``images`` (what `generate_images` decodes from)."""
        pixels = torch.stack([to_pixels(img, self.image_size) for img in images]).to(self.device, self._harmon.dtype)
        return self._harmon.encode_latents(pixels)

    @torch.no_grad()
    def decode_tokens(self, token_ids: torch.Tensor) -> list[Image.Image]:
        """RGB images of token latents (B, N, C) (`encode_images`' or `generate_images`' ``token_ids``)."""
        grid = latent_grid((self.image_size, self.image_size), self._harmon.vae.stride * self._harmon.mar.patch_size)
        return to_pil_images(self._harmon.decode_latents(token_ids.to(self.device, self._harmon.dtype), grid))

    # ---- adapters (seer.models.adapters does the work) ----

    @property
    def adapter_names(self) -> list[str]:
        """The roles added or loaded so far."""
        return [] if self._peft is None else list(self._peft.peft_config)

    def add_adapter(self, role: str, settings: LoraSettings | None = None) -> None:
        """See `UnifiedModel.add_adapter`; the default target (any backend's LLM attention) maps to Harmon's LLM."""
        settings = settings or LoraSettings()
        if settings.target_modules == LANGUAGE_MODEL_ATTENTION:
            settings = LoraSettings(r=settings.r, alpha=settings.alpha, dropout=settings.dropout,
                                    target_modules=HARMON_LLM_ATTENTION)  # fmt: skip
        self._peft = adapters.add_adapter(self.module, role, settings)

    def activate_adapter(self, role: str, *, trainable: bool = False) -> None:
        """See `UnifiedModel.activate_adapter`."""
        adapters.activate_adapter(self._require_peft(role), role, trainable=trainable)

    @contextmanager
    def use_adapter(self, role: str) -> Iterator[None]:
        """See `UnifiedModel.use_adapter`."""
        with adapters.use_adapter(self._require_peft(role), role):
            yield

    @contextmanager
    def no_adapter(self) -> Iterator[None]:
        """See `UnifiedModel.no_adapter`."""
        with adapters.no_adapter(self.module):
            yield

    def save_adapter(self, role: str, directory: str | Path) -> Path:
        """See `UnifiedModel.save_adapter`."""
        return adapters.save_adapter(self._require_peft(role), role, directory)

    def load_adapter(self, role: str, directory: str | Path) -> None:
        """See `UnifiedModel.load_adapter`."""
        self._peft = adapters.load_adapter(self.module, role, directory)

    def _require_peft(self, role: str) -> PeftModel:
        if self._peft is None:
            raise SeerError(f"adapter '{role}': not found (no adapters yet); add or load it first")
        return self._peft


def _uniforms(
    seeds: Sequence[int] | None, size: int, steps: int, do_sample: bool, temperature: float, device: torch.device
) -> torch.Tensor | None:
    """The per-sample uniforms of a text sampling call (None when greedy)."""
    if not do_sample:
        return None
    if temperature <= 0:
        raise SeerError(f"temperature: expected > 0 when sampling (use do_sample=False for greedy), got {temperature}")
    if seeds is None:
        seeds = torch.randint(0, 2**62, (size,)).tolist()
    if len(seeds) != size:
        raise SeerError(f"seeds: expected one per prompt ({size}), got {len(seeds)}")
    return seeded_uniforms(seeds, steps).to(device)


def _cut_after(ids: list[int], stop: set[int]) -> list[int]:
    """``ids`` up to and including the first stop token (all of them when there is none)."""
    for i, token in enumerate(ids):
        if token in stop:
            return ids[: i + 1]
    return ids


# ---------------------------------------------------------------------------------------------------------------
# Loading and converting the official checkpoints


def tied_names(config: HarmonConfig) -> frozenset[str]:
    """Tensors stored once because they are tied (Qwen2.5-0.5B/1.5B tie the LM head to the input embeddings)."""
    return frozenset({"llm.lm_head.weight"}) if config.text_config.tie_word_embeddings else frozenset()


def load_config(path: Path) -> HarmonConfig:
    """``path/config.json`` as a HarmonConfig, or a one-line SeerError."""
    file = path / "config.json"
    if not file.is_file():
        raise SeerError(f"{file}: file not found (expected a Harmon config.json; see `convert`)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SeerError(f"{file}: not valid JSON ({error})") from error
    if data.get("model_type") != "harmon":
        raise SeerError(f"{file}: model_type: expected 'harmon', got {data.get('model_type')!r}")
    for key in ("text_config", "mar_config", "vae_config"):
        if not isinstance(data.get(key), dict):
            raise SeerError(f"{file}: key '{key}': expected an object")
    try:
        return HarmonConfig.from_dict(data)
    except (TypeError, ValueError, KeyError) as error:
        raise SeerError(f"{file}: not a valid Harmon config ({error})") from error


def weight_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (one file, or the shards its index names)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as error:
            raise SeerError(f"{index}: expected a safetensors index with a 'weight_map' ({error})") from error
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise SeerError(f"{index}: shard {missing[0]!r} not found in {path}")
        return [path / s for s in shards]
    if (path / WEIGHTS_NAME).is_file():
        return [path / WEIGHTS_NAME]
    raise SeerError(f"{path}: no model.safetensors or model.safetensors.index.json (only safetensors are loaded)")


def add_image_token(tokenizer: Any, image_token_id: int, where: Path | str) -> None:
    """Add ``<image>`` as a special token (as Harmon's scripts do) and check it got the id the config names."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    got = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if got != image_token_id:
        raise SeerError(f"{where}: tokenizer gives {IMAGE_TOKEN} the id {got}; config.json says {image_token_id}")


def _torch_load(file: Path) -> dict[str, Any]:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SeerError(f"{file}: not readable by torch.load(weights_only=True) ({type(error).__name__})") from error


def _state_dict_of(loaded: Any, file: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (plain, or under 'state_dict' / 'model', as MAR's kl16.ckpt)."""
    for key in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise SeerError(f"{file}: expected a state dict of tensors")
    return dict(loaded)


def official_state_dict(
    checkpoint: Path, vae: Path, llm: Path | None, config: HarmonConfig
) -> dict[str, torch.Tensor]:
    """The full state dict from Harmon's raw files: ``harmon_*.pth`` + MAR's ``kl16.ckpt`` (+ Qwen for ``llm.*``).

    The .pth holds the LLM, MAR and glue (Harmon's training excludes ``vae.*``); LLM tensors it lacks come from the
    Qwen2.5 directory's safetensors. Names and shapes are checked against ``config``: a missing or mis-shaped tensor
    is a SeerError naming it.
    """
    state = {k.removeprefix("module."): v for k, v in _state_dict_of(_torch_load(checkpoint), checkpoint).items()}
    state = {k: v for k, v in state.items() if not k.startswith("vae.")}
    state.update({f"vae.{k}": v for k, v in _state_dict_of(_torch_load(vae), vae).items()})
    if llm is not None:
        for file in sorted(llm.glob("*.safetensors")):
            for name, tensor in load_file(str(file)).items():
                state.setdefault(f"llm.{name}", tensor)
    with torch.device("meta"):
        skeleton = HarmonForConditionalGeneration(config)
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    optional = tied_names(config)
    for name, shape in expected.items():
        if name not in state:
            if name in optional:
                continue
            raise SeerError(f"{checkpoint}: tensor '{name}' is missing (expected shape {list(shape)})")
        if tuple(state[name].shape) != shape:
            got = list(state[name].shape)
            raise SeerError(f"{checkpoint}: tensor '{name}' has shape {got}, expected {list(shape)}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise SeerError(f"{checkpoint}: unexpected tensor '{unexpected[0]}' (not part of Harmon's {len(expected)})")
    return {k: v.contiguous() for k, v in state.items() if k not in optional}


def convert(
    checkpoint: Path, vae: Path, llm: Path, shape: str, out: Path, dtype: torch.dtype = torch.bfloat16
) -> Path:
    """Write a `from_pretrained` directory from Harmon's raw checkpoint, MAR's VAE and the Qwen2.5 directory.

    The Qwen2.5-Instruct directory gives the tokenizer (``<image>`` is added) and the LLM's config.json.
    """
    if shape not in SHAPES or shape == "harmon-tiny":
        raise SeerError(f"--shape {shape!r}: expected harmon-0.5b or harmon-1.5b")
    try:
        tokenizer = AutoTokenizer.from_pretrained(llm, local_files_only=True)
        text = Qwen2Config.from_pretrained(llm, local_files_only=True)
    except (OSError, ValueError) as error:
        raise SeerError(f"{llm}: cannot read the Qwen2.5 tokenizer and config.json ({error})") from error
    add_image_token(tokenizer, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) if IMAGE_TOKEN in tokenizer.get_vocab()
                    else len(tokenizer), where=llm)  # fmt: skip
    config = build_config(SHAPES[shape], tokenizer)
    reference = config.text_config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size"):
        if getattr(text, key) != getattr(reference, key):
            needed = getattr(reference, key)
            raise SeerError(f"{llm}/config.json: {key} is {getattr(text, key)}, {shape} needs {needed}")
    config.text_config = text
    state = official_state_dict(checkpoint, vae, llm, config)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, str(out / WEIGHTS_NAME),
              metadata={"format": "pt"})  # fmt: skip
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seer.models.harmon convert ...``: see `convert`."""
    parser = argparse.ArgumentParser(prog="python -m seer.models.harmon", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="Harmon's .pth + kl16.ckpt + Qwen2.5 directory -> a safetensors directory")
    conv.add_argument("--checkpoint", type=Path, required=True, help="harmon_1.5b.pth or harmon_0.5b.pth")
    conv.add_argument("--vae", type=Path, required=True, help="MAR's kl16.ckpt")
    conv.add_argument("--llm", type=Path, required=True, help="local Qwen2.5-{0.5B,1.5B}-Instruct directory")
    conv.add_argument("--shape", required=True, choices=["harmon-0.5b", "harmon-1.5b"])
    conv.add_argument("--out", type=Path, required=True)
    conv.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args(argv)
    try:
        out = convert(args.checkpoint, args.vae, args.llm, args.shape, args.out, getattr(torch, args.dtype))
    except SeerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
