"""RLVR's curriculum as pure functions: basic prompt-alignment pairs first (stage 1), then instruction pairs (stage 2).

The switch happens after `switch_step` optimiser steps, or as soon as the evaluator's greedy accuracy on held-out
stage-1 pairs (measured every `eval_steps` steps) reaches `threshold`, whichever comes first; either may be off.

Steps are TRL's optimiser steps, counted from 1. Stage 2 starts at `CurriculumState.first_stage2_step`:

- the step rule: ``switch_step + 1`` (known before training; ``switch_step = 0`` trains on stage 2 only);
- the threshold rule: a decision taken after step k takes effect at step ``k + 1 + READ_AHEAD_STEPS``, because the
  trainer's data loader has already read the batch of step k + 1 when step k ends. Fixing the lag makes the stage of
  every step a function of the decisions alone, never of when a batch happened to be read, so a run resumed from a
  checkpoint trains on exactly the pairs the uninterrupted run would.

The data side maps a global "slot" (one prompt of one step, in TRL's sampler order) to a pair: `slot_step` says which
step it belongs to, `pool_index` which pair of the stage's pool it shows (a seeded permutation per pass over the
pool, so every pair is seen once per pass).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

PROMPT_STAGE, INSTRUCTION_STAGE = 1, 2
STAGE_NAMES: dict[int, str] = {PROMPT_STAGE: "prompt", INSTRUCTION_STAGE: "instruction"}
# How many steps ahead of training the data loader reads (accelerate's DataLoaderShard fetches one batch ahead).
READ_AHEAD_STEPS = 1


@dataclass(frozen=True)
class SwitchRule:
    """When to move from stage 1 to stage 2."""

    switch_step: int | None = field(metadata={"help": "Stage 2 from step switch_step + 1; None: no step rule."})
    threshold: float | None = field(
        metadata={"help": "Switch once held-out stage-1 accuracy >= threshold; None: no threshold rule."}
    )
    eval_steps: int = field(metadata={"help": "Measure held-out accuracy after every eval_steps-th step."})

    def __post_init__(self) -> None:
        if self.switch_step is not None and self.switch_step < 0:
            raise ValueError(f"curriculum_switch_step: expected >= 0 or null, got {self.switch_step}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"curriculum_threshold: expected a value in [0, 1] or null, got {self.threshold}")
        if self.eval_steps < 1:
            raise ValueError(f"curriculum_eval_steps: expected >= 1, got {self.eval_steps}")


@dataclass(frozen=True)
class CurriculumState:
    """What the curriculum has decided so far (saved with every checkpoint).

    Attributes:
        first_stage2_step: the first step that trains on stage-2 pairs; None while undecided.
        reason: "step" or "threshold": which rule set `first_stage2_step`.
        decided_at: the step after which the switch was decided.
        heldout: (step, held-out stage-1 accuracy) of every evaluation so far.
    """

    first_stage2_step: int | None = None
    reason: str | None = None
    decided_at: int | None = None
    heldout: tuple[tuple[int, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = asdict(self)
        out["heldout"] = [list(h) for h in self.heldout]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurriculumState:
        """Inverse of `to_dict`."""
        heldout = tuple((int(step), float(acc)) for step, acc in data.get("heldout", []))
        return cls(data.get("first_stage2_step"), data.get("reason"), data.get("decided_at"), heldout)


def initial_state(rule: SwitchRule) -> CurriculumState:
    """The state before training: only the step rule is known."""
    if rule.switch_step is None:
        return CurriculumState()
    return CurriculumState(first_stage2_step=rule.switch_step + 1, reason="step", decided_at=0)


def stage_at(step: int, state: CurriculumState) -> int:
    """The stage whose pairs step `step` (1-based) trains on."""
    if state.first_stage2_step is not None and step >= state.first_stage2_step:
        return INSTRUCTION_STAGE
    return PROMPT_STAGE


def needs_evaluation(step: int, rule: SwitchRule, state: CurriculumState) -> bool:
    """Whether to measure held-out accuracy after step `step`: the threshold rule is on, it is an evaluation step,
    and a switch decided now would come earlier than the one already scheduled."""
    if rule.threshold is None or step % rule.eval_steps:
        return False
    earliest = step + 1 + READ_AHEAD_STEPS
    return state.first_stage2_step is None or state.first_stage2_step > earliest


def record_evaluation(step: int, accuracy: float, rule: SwitchRule, state: CurriculumState) -> CurriculumState:
    """The state after measuring held-out accuracy `accuracy` after step `step` (switching if it passes)."""
    state = replace(state, heldout=state.heldout + ((step, accuracy),))
    if rule.threshold is None or accuracy < rule.threshold:
        return state
    candidate = step + 1 + READ_AHEAD_STEPS
    if state.first_stage2_step is not None and state.first_stage2_step <= candidate:
        return state
    return replace(state, first_stage2_step=candidate, reason="threshold", decided_at=step)


def slot_step(slot: int, prompts_per_step: int) -> int:
    """The (1-based) step whose batch holds slot `slot` (TRL reads slots in order, `prompts_per_step` per step)."""
    return slot // prompts_per_step + 1


def pool_index(slot: int, pool_size: int, seed: int, stage: int) -> int:
    """The pair of a stage's pool that slot `slot` shows: pass `slot // pool_size` over a seeded permutation."""
    if pool_size < 1:
        raise ValueError(f"stage {stage}: the pair pool is empty")
    return _permutation(seed, stage, slot // pool_size, pool_size)[slot % pool_size]


@lru_cache(maxsize=64)
def _permutation(seed: int, stage: int, epoch: int, size: int) -> tuple[int, ...]:
    return tuple(random.Random(f"seer-curriculum/{seed}/{stage}/{epoch}").sample(range(size), size))
