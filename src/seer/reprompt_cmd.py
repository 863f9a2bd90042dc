"""`seer reprompt`: inference with a trained reprompter: prompt + instruction -> descriptor -> image.

    seer reprompt --adapter runs/rlmt/reprompter --prompt "a large red circle at the center on a white background" \
        --instruction "make it look icy" --out icy.png

The reprompter (greedy) writes its reasoning and a descriptor; the frozen generator (every adapter off) renders the
descriptor with ``--seed``. The reasoning and the descriptor are printed; a malformed answer is an error (exit 2)
that shows the raw text. ``--adapter`` may also be an RLMT run directory (its reprompter/ is used, and its
config.yaml gives the template, grammar and model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from seer.errors import SeerError
from seer.models.adapters import REPROMPTER
from seer.rl.reprompt import REPROMPT_TEMPLATE, check_template, generate_reprompts


@dataclass
class RepromptArgs:
    """Arguments of `seer reprompt`."""

    adapter: str = field(
        default="runs/rlmt/reprompter",
        metadata={"help": "The reprompter adapter directory (an RLMT run's reprompter/), or the RLMT run directory."},
    )
    prompt: str = field(default="", metadata={"help": "The literal prompt."})
    instruction: str = field(default="", metadata={"help": "The instruction to follow."})
    out: str = field(default="reprompt.png", metadata={"help": "Where the PNG goes."})
    backend: Literal["janus", "harmon"] = field(default="janus", metadata={"help": "Model backend."})
    model: str | None = field(
        default=None, metadata={"help": "Model directory; null: the RLMT run's (from its config.yaml), else embedded."}
    )
    device: str = field(default="cpu", metadata={"help": "Device (cpu, cuda, ...)."})
    dtype: Literal["float32", "bfloat16"] = field(default="float32", metadata={"help": "Weight dtype."})
    seed: int = field(default=0, metadata={"help": "Generator seed of the image."})
    guidance_scale: float | None = field(default=None, metadata={"help": "CFG scale; null: the model's default."})
    reprompt_template: str | None = field(
        default=None, metadata={"help": "The reprompter's question; null: the RLMT run's (else the tiny default)."}
    )
    descriptor_grammar: Literal["shapeworld", "none"] | None = field(
        default=None, metadata={"help": "Descriptor check; null: the RLMT run's (else shapeworld)."}
    )
    max_new_tokens: int | None = field(default=None, metadata={"help": "Token budget; null: the RLMT run's."})

    def __post_init__(self) -> None:
        if not self.prompt.strip() or not self.instruction.strip():
            raise ValueError("prompt and instruction: expected non-empty text (--prompt '...' --instruction '...')")
        if self.reprompt_template is not None:
            check_template(self.reprompt_template)


ARG_TYPES = (RepromptArgs,)


def find_adapter(path: Path) -> tuple[Path, dict]:
    """(the adapter directory, the RLMT run's config or {}) for an adapter or RLMT run directory."""
    adapter = path / REPROMPTER if (path / REPROMPTER / "adapter_model.safetensors").is_file() else path
    if not (adapter / "adapter_model.safetensors").is_file():
        raise SeerError(f"{path}: no adapter_model.safetensors (key 'adapter': expected an RLMT run's reprompter/)")
    config_path = adapter.parent / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    return adapter, config if isinstance(config, dict) else {}


def main(args: RepromptArgs) -> int:
    """Run `seer reprompt`; 0 on success."""
    from seer.train.rlmt import RLMTArgs, load_model

    adapter, run = find_adapter(Path(args.adapter))
    template = args.reprompt_template or run.get("reprompt_template") or REPROMPT_TEMPLATE
    grammar = args.descriptor_grammar or run.get("descriptor_grammar") or "shapeworld"
    max_new_tokens = args.max_new_tokens or run.get("max_completion_length") or 96
    model_args = RLMTArgs(
        backend=args.backend if run.get("backend") is None else run["backend"],
        model=args.model if args.model is not None else run.get("model"),
        model_shape=None if args.model is not None else run.get("model_shape"),
        device=args.device, dtype=args.dtype,
    )  # fmt: skip
    model, _ = load_model(model_args)
    model.load_adapter(REPROMPTER, adapter)
    (reprompt,) = generate_reprompts(
        model, [args.prompt], [args.instruction], role=REPROMPTER, template=template, max_new_tokens=max_new_tokens,
        batch_size=1, grammar=grammar, max_words=int(run.get("max_descriptor_words") or 64),
    )  # fmt: skip
    if reprompt.descriptor is None:
        raise SeerError(f"{adapter}: the reprompter's answer was rejected ({reprompt.reason}): {reprompt.text!r}")
    with model.no_adapter():
        image = model.generate_images([reprompt.descriptor], seeds=[args.seed], guidance_scale=args.guidance_scale)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.images[0].save(out)
    print(f"reasoning: {reprompt.reasoning}")
    print(f"descriptor: {reprompt.descriptor}")
    print(f"image: {out}")
    return 0
