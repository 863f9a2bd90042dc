"""Named LoRA adapters (SEER's roles) on one frozen base model, through PEFT.

The base model is never trained: SEER's generator and KL reference are the base with every adapter disabled.
Each role is one PEFT LoRA adapter on the language model's attention projections:

- ``evaluator``: trained in RLVR, frozen afterwards and borrowed with ``use_adapter`` to score images in RLMT;
- ``reprompter``: trained in RLMT.

Freezing rule, enforced after every operation here: the base weights are frozen, and at most one adapter (the one
activated with ``trainable=True``) has ``requires_grad``. PEFT's own switches do not keep this rule by themselves:
``set_adapter(name)`` makes ``name`` trainable unless ``inference_mode=True``, and leaving ``disable_adapter()``
makes the active adapter trainable again. So the context managers here snapshot the whole adapter state
(active adapter, enabled or not, ``requires_grad`` of every LoRA weight) and restore it exactly.

transformers' own ``model.add_adapter`` cannot be used: transformers 5.24 requires peft >= 0.22 for it, and the
newest published peft is 0.21.2, so the model is wrapped with ``peft.get_peft_model`` (as TRL does).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from seer.errors import SeerError
from seer.models.base import check_safetensors_shapes

EVALUATOR = "evaluator"
REPROMPTER = "reprompter"
ROLES: tuple[str, ...] = (EVALUATOR, REPROMPTER)

# The language model's attention only: the vision tower also has q_proj/k_proj/v_proj modules, which a plain
# list of names would wrap too.
LANGUAGE_MODEL_ATTENTION = r".*language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # it becomes part of parameter names, so no dots


@dataclass
class LoraSettings:
    """LoRA hyper-parameters of one role."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = LANGUAGE_MODEL_ATTENTION

    def to_peft(self) -> LoraConfig:
        """The equivalent PEFT config."""
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules
        )


@dataclass(frozen=True)
class AdapterState:
    """Everything the context managers restore: active adapter, whether adapters are disabled, trainable flags."""

    active: str
    disabled: bool
    requires_grad: dict[str, bool]


def add_adapter(model: torch.nn.Module, role: str, settings: LoraSettings | LoraConfig) -> PeftModel:
    """Add a fresh, frozen adapter ``role``; wraps ``model`` in a ``PeftModel`` on the first call.

    Returns the ``PeftModel`` (the same object when ``model`` already is one). The active adapter is unchanged,
    except that the first adapter becomes the active one; lora_B starts at zero, so the new adapter changes nothing.
    """
    _check_role_name(role)
    config = settings.to_peft() if isinstance(settings, LoraSettings) else settings
    if not isinstance(model, PeftModel):
        peft_model = get_peft_model(model, config, adapter_name=role)
        _set_requires_grad(peft_model, {})  # get_peft_model makes the new adapter trainable
        return peft_model
    if role in model.peft_config:
        raise SeerError(f"adapter '{role}': already exists (adapters: {list(model.peft_config)})")
    state = adapter_state(model)
    model.add_adapter(role, config)
    restore_adapter_state(model, state)
    return model


def activate_adapter(model: PeftModel, role: str, *, trainable: bool) -> None:
    """Make ``role`` the active adapter; if ``trainable``, its LoRA weights are the only ones with gradients."""
    _check_known(model, role)
    model.set_adapter(role, inference_mode=not trainable)
    model.base_model.enable_adapter_layers()
    _set_requires_grad(model, {name: True for name in _lora_parameters(model, role)} if trainable else {})


@contextmanager
def use_adapter(model: PeftModel, role: str) -> Iterator[None]:
    """Run the body with ``role`` active and frozen (even inside ``no_adapter``), then restore the previous state."""
    _check_known(model, role)
    state = adapter_state(model)
    model.set_adapter(role, inference_mode=True)
    model.base_model.enable_adapter_layers()
    _set_requires_grad(model, {})
    try:
        yield
    finally:
        restore_adapter_state(model, state)


@contextmanager
def no_adapter(model: torch.nn.Module) -> Iterator[None]:
    """Run the body on the base model (all adapters disabled), then restore the previous state.

    A model without adapters is already the base model, so this is then a no-op.
    """
    if not isinstance(model, PeftModel):
        yield
        return
    state = adapter_state(model)
    model.base_model.disable_adapter_layers()
    try:
        yield
    finally:
        restore_adapter_state(model, state)


def adapter_state(model: PeftModel) -> AdapterState:
    """Snapshot of the adapter state of ``model``."""
    layer = next(module for module in model.modules() if isinstance(module, BaseTunerLayer))
    flags = {name: p.requires_grad for name, p in model.named_parameters() if is_lora_name(name)}
    return AdapterState(active=model.active_adapter, disabled=layer.disable_adapters, requires_grad=flags)


def restore_adapter_state(model: PeftModel, state: AdapterState) -> None:
    """Put ``model`` back into ``state`` (LoRA weights missing from the snapshot end up frozen)."""
    model.set_adapter(state.active, inference_mode=True)
    if state.disabled:
        model.base_model.disable_adapter_layers()
    else:
        model.base_model.enable_adapter_layers()
    _set_requires_grad(model, state.requires_grad)


def save_adapter(model: PeftModel, role: str, directory: str | Path) -> Path:
    """Write adapter ``role`` into ``directory`` (adapter_config.json + adapter_model.safetensors only).

    PEFT's ``save_pretrained`` puts a named adapter in a sub-folder and adds a README, so the adapter is staged in
    a temporary sibling folder and renamed into place: a crash never leaves a half-written adapter behind.
    """
    _check_known(model, role)
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}.") as staging:
        model.save_pretrained(staging, selected_adapters=[role])
        written = Path(staging) / role
        if directory.exists():  # move the old copy into the staging folder, which is deleted on exit
            os.replace(directory, Path(staging) / "previous")
        os.replace(written, directory)
    return directory


def load_adapter(model: torch.nn.Module, role: str, directory: str | Path) -> PeftModel:
    """Load an adapter written by `save_adapter` as ``role``, frozen, without changing the active adapter.

    The stored tensors are checked against the adapter the config describes before anything is loaded; on a
    mismatch the new adapter is removed again and `SeerError` names the file and the tensor.
    """
    directory = Path(directory)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (directory / name).is_file():
            raise SeerError(f"{directory / name}: file not found (expected a LoRA adapter written by save_adapter)")
    try:
        config = LoraConfig.from_pretrained(str(directory))
    except (ValueError, TypeError, OSError) as error:
        raise SeerError(f"{directory / ADAPTER_CONFIG}: not a valid LoRA config ({error})") from error
    was_wrapped = isinstance(model, PeftModel)
    peft_model = add_adapter(model, role, config)
    expected = {name: tuple(t.shape) for name, t in get_peft_model_state_dict(peft_model, adapter_name=role).items()}
    try:
        check_safetensors_shapes([directory / ADAPTER_WEIGHTS], expected, described_by=ADAPTER_CONFIG)
    except SeerError:
        _remove_adapter(peft_model, role, was_wrapped)
        raise
    state = adapter_state(peft_model)
    weights = load_file(str(directory / ADAPTER_WEIGHTS), device=str(next(peft_model.parameters()).device))
    set_peft_model_state_dict(peft_model, weights, adapter_name=role)
    restore_adapter_state(peft_model, state)
    return peft_model


def adapter_parameters(model: torch.nn.Module, role: str) -> dict[str, torch.nn.Parameter]:
    """The LoRA weights of ``role`` by parameter name (empty when there is no such adapter)."""
    names = set(_lora_parameters(model, role))
    return {name: p for name, p in model.named_parameters() if name in names}


def _lora_parameters(model: torch.nn.Module, role: str) -> list[str]:
    # LoRA weights are named "...q_proj.lora_A.<role>.weight"
    return [name for name, _ in model.named_parameters() if is_lora_name(name) and f".{role}." in name]


def is_lora_name(name: str) -> bool:
    """Whether a parameter (or state-dict) name is a LoRA weight."""
    return ".lora_" in name


def _set_requires_grad(model: torch.nn.Module, trainable: dict[str, bool]) -> None:
    """The freezing rule: only the named LoRA weights flagged True get gradients; everything else is frozen."""
    for name, p in model.named_parameters():
        p.requires_grad_(trainable.get(name, False))


def _remove_adapter(model: PeftModel, role: str, was_wrapped: bool) -> None:
    """Undo `add_adapter`: delete the adapter, or strip the LoRA layers again if it was the only one."""
    if was_wrapped:
        model.delete_adapter(role)
    else:
        model.unload()


def _check_role_name(role: str) -> None:
    if not _ROLE_NAME.fullmatch(role):
        raise SeerError(f"adapter role {role!r}: expected a Python identifier such as 'evaluator'")


def _check_known(model: torch.nn.Module, role: str) -> None:
    known = list(model.peft_config) if isinstance(model, PeftModel) else []
    if role not in known:
        raise SeerError(f"adapter '{role}': not found (adapters: {known}); add or load it first")
