"""TRL's GRPOTrainer as both SEER stages use it (`seer rlvr`, `seer rlmt`): one place for the settings we fix.

Both stages train one LoRA adapter of the model's PEFT module with GRPO, one rollout per update, rows read in the
order the dataset gives them, and KL to the adapter-free base. `args` is the stage's argument dataclass; the keys
read here have the same names in both (prompts_per_step, num_generations, learning_rate, beta, ...).

A step whose loss or gradient is not finite updates nothing (`seer.train.nonfinite`); ``trainer.nonfinite`` is that
guard, and its ``stop_message`` says when ``max_nonfinite_steps`` such steps in a row stopped the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from seer.errors import SeerError
from seer.models import process_state
from seer.models.base import UnifiedModel, with_response_prefix
from seer.train.nonfinite import NonFiniteGuard

# Help of the two GRPO-stage keys that RLVRArgs and RLMTArgs share word for word.
CONSTANT_REWARD_HELP = ("After max_bad_reward_steps steps in a row where every group's rewards are equal (any value; "
                        "GRPO learns nothing): warn each such step, or stop (exit 1).")  # fmt: skip
MAX_NONFINITE_HELP = ("A step whose loss or gradient is NaN or infinite is skipped (no update) and logged; this many "
                      "such steps in a row stop the run (exit 1), its last checkpoint intact.")  # fmt: skip


class GuardedGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer that shows each micro-batch's loss to a `NonFiniteGuard` (its callback does the rest).

    ``training_step`` is the override point transformers documents for this; the loss is not passed to callbacks.
    """

    def __init__(self, *args: Any, nonfinite: NonFiniteGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nonfinite = nonfinite

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.nonfinite.observe_loss(loss)
        return loss


def build_grpo_trainer(
    model: UnifiedModel, args: Any, dataset: Dataset, reward_funcs: Sequence[Any], reward_weights: Sequence[float],
    callbacks: list[TrainerCallback], response_prefix: str = "",
) -> GuardedGRPOTrainer:  # fmt: skip
    """TRL's GRPOTrainer on `model.module` (the active adapter trainable), rewarded by `reward_funcs`, with the
    non-finite step guard (``args.max_nonfinite_steps``) as its first callback. With ``response_prefix``, every
    prompt ends in it, as `UnifiedModel.format_prompt` writes it; the completions are what comes after."""
    world = process_state(args.device).num_processes
    completions_per_step = args.prompts_per_step * args.num_generations
    if completions_per_step % (world * args.gradient_accumulation_steps):
        raise SeerError(
            f"prompts_per_step * num_generations ({completions_per_step}): expected a multiple of processes x "
            f"gradient_accumulation_steps ({world} x {args.gradient_accumulation_steps})"
        )
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=completions_per_step // (world * args.gradient_accumulation_steps),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_generations=args.num_generations,
        num_iterations=1,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler_type,
        beta=0.0,  # set below, after construction
        epsilon=args.epsilon,
        loss_type=args.loss_type,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        top_k=0,
        top_p=1.0,
        # JanusProcessor returns tensors by default, which fails on TRL's batch of prompts of different lengths;
        # TRL expects ragged lists here and pads them itself.
        chat_template_kwargs={"return_tensors": None},
        reward_weights=list(reward_weights),
        seed=args.seed,
        shuffle_dataset=False,  # rows are in step order: each stage decides what a step shows (curriculum, seeds)
        dataloader_num_workers=0,  # workers would read further ahead than the curriculum allows for
        logging_steps=1,
        save_strategy="steps",
        save_steps=args.save_steps,
        report_to="none",
        disable_tqdm=True,  # the stages draw one compact progress bar instead of a dict per step
        use_cpu=torch.device(args.device).type == "cpu",
        bf16=args.bf16,
        # transformers >= 5.24's name; passing the deprecated `gradient_checkpointing` warns on every run
        activation_checkpointing=args.gradient_checkpointing,
    )
    guard = NonFiniteGuard(args.max_nonfinite_steps)
    trainer = GuardedGRPOTrainer(
        model=model.module,
        reward_funcs=list(reward_funcs),
        args=config,
        train_dataset=dataset,
        processing_class=model.processor,
        # First of ours: its on_log field must be in the logs before a later callback writes metrics.jsonl, and its
        # on_step_end runs after the Trainer's flow callback, whose save request it cancels on a stop.
        callbacks=[guard, *callbacks],
        nonfinite=guard,
    )
    if response_prefix:  # TRL renders prompts with its own `chat_template` when it has one (None: the processor's)
        trainer.chat_template = with_response_prefix(model.processor.chat_template, response_prefix)
    trainer.remove_callback(PrinterCallback)  # it prints every step's metric dict; the stages summarise
    # The KL reference must be the adapter-free base. Given a PeftModel and beta > 0, TRL 1.16 expects a pre-trained
    # adapter named "default" and copies it as the reference; with beta set after construction it takes the path it
    # takes for adapters it creates itself: reference log-probs under disable_adapter(), i.e. the base model.
    trainer.beta = config.beta = args.beta
    return trainer
