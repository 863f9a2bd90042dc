"""Non-finite steps in the GRPO stages (`seer rlvr`, `seer rlmt`): skip the update, log it, stop a run that repeats it.

A NaN or infinite loss or gradient, applied once, poisons the LoRA weights and AdamW's moments for good. TRL's
`GRPOTrainer` (through `transformers.Trainer`) clips and steps whatever the gradient is, so `NonFiniteGuard` sits
on the Trainer's ``on_pre_optimizer_step`` hook (after clipping, before ``optimizer.step()``): when the step's loss
or any gradient is not finite it drops every gradient (``grad = None``), and the optimizer step that follows is a
no-op. The batch and the LR schedule still advance, as in `seer pretrain`, so step s keeps its batch and --resume
stays exact. ``max_nonfinite_steps`` such steps in a row stop the run; the step that stops it writes no checkpoint,
so the newest one holds the last good adapter.

    guard = NonFiniteGuard(max_nonfinite_steps=5)
    trainer = GRPOTrainer(..., callbacks=[guard, ...])   # before callbacks that write the step's logs
    # the trainer's training_step must call guard.observe_loss(loss) (seer.train.grpo does)
    trainer.train()
    if guard.stop_message: ...                           # the run was stopped
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch
from accelerate.utils import reduce
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from seer.train.run_dir import add_step_fields


def finite_flags(params: Iterable[torch.nn.Parameter]) -> list[torch.Tensor]:
    """One 0-d bool tensor per gradient of `params`: whether it is all finite (parameters without one are skipped)."""
    return [torch.isfinite(p.grad).all() for p in params if p.grad is not None]


def drop_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Remove the gradients of `params`, so that the optimizer step that follows leaves them untouched.

    Zeroing is not enough: torch's Adam/AdamW would still decay the moments of a zero gradient, move the weight
    by the old momentum and apply weight decay. A parameter whose ``grad`` is None is skipped entirely (no state
    change, no step count).
    """
    for p in params:
        p.grad = None


class NonFiniteGuard(TrainerCallback):
    """Skips the optimizer update of a step whose loss or gradient is NaN/inf; stops after `max_nonfinite_steps` such
    steps in a row (``stop_message`` says why; the caller exits 1).

    Logs ``health/nonfinite_steps`` with the step's metrics: the skipped steps in a row ending at this step (0: the
    step updated the weights). Every skipped step also prints a warning line to stderr.
    """

    def __init__(self, max_nonfinite_steps: int) -> None:
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps: expected >= 1, got {max_nonfinite_steps}")
        self.max_nonfinite_steps = max_nonfinite_steps
        self.in_a_row = 0
        self.first_bad_step: int | None = None
        self.stop_message: str | None = None
        self._losses_finite: list[torch.Tensor] = []  # of the micro-batches of the step under way

    def observe_loss(self, loss: torch.Tensor) -> None:
        """Record one micro-batch's loss (called from the trainer's ``training_step``)."""
        # Kept as device tensors: reading each one would sync on every micro-batch; the step reads them all at once.
        self._losses_finite.append(torch.isfinite(loss.detach()).all())

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._losses_finite = []

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: torch.nn.Module,
        **kwargs: Any,
    ) -> TrainerControl:  # fmt: skip
        params = [p for p in model.parameters() if p.requires_grad]
        device = params[0].device if params else torch.device("cpu")
        losses_ok = torch.stack(self._losses_finite).all() if self._losses_finite else torch.ones((), dtype=torch.bool)
        flags = [losses_ok.to(device), *finite_flags(params)]
        # Gradients are already all-reduced here, but a loss is per process: every process must take the same
        # decision (a process stepping alone would leave the replicas apart), so the verdict is the max over them.
        # This is the one device sync of the check.
        bad = reduce((~torch.stack(flags).all()).float(), reduction="max").item() > 0
        step = state.global_step + 1  # the step under way (global_step counts finished ones)
        if not bad:
            self.in_a_row, self.first_bad_step = 0, None
            return control
        drop_grads(params)
        self.in_a_row += 1
        if self.first_bad_step is None:
            self.first_bad_step = step
        what = "gradient" if bool(losses_ok) else "loss"  # on this process; the others may differ
        if state.is_world_process_zero:
            tqdm.write(
                f"warning: step {step}: non-finite {what}; update skipped, weights unchanged ({self.in_a_row} in a "
                f"row, max_nonfinite_steps={self.max_nonfinite_steps})",
                file=sys.stderr,
            )
        if self.in_a_row >= self.max_nonfinite_steps:
            self.stop_message = (
                f"non-finite loss or gradient for {self.in_a_row} steps in a row (steps {self.first_bad_step}-"
                f"{step}), so training stopped; the newest checkpoint in {args.output_dir} holds the last good "
                "adapter (a skipped step changes no weight). Check the rewards, the learning rate and bf16; "
                "max_nonfinite_steps sets the patience."
            )
            control.should_training_stop = True
        return control

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if self.stop_message is not None:
            # The Trainer's flow callback (run before us) asks for a checkpoint on save steps and at the last step;
            # the weights did not change, but a checkpoint past the fault would be what --resume continues from.
            control.should_save = False
        return control

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        logs: dict[str, float] | None = None, **kwargs: Any,
    ) -> TrainerControl:  # fmt: skip
        add_step_fields(state, logs, {"health/nonfinite_steps": float(self.in_a_row)})
        return control
