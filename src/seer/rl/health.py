"""Reward health: see every reward of every GRPO step, log the zero-variance groups, stop a run that learns nothing.

GRPO learns only from groups whose rewards differ: a group of `num_generations` completions that all score the same
has zero advantage everywhere. A run whose rewards are all zero (the model never produces a rewarded answer) or not
finite (a broken reward function; TRL's weighted sum would silently treat NaN as 0) spends its whole budget
training on nothing, so `RewardHealthMonitor` stops it after `max_bad_steps` such steps in a row, with a message
that says what was seen, instead of letting it finish as if it had worked. Constant rewards of any value (every
group without variance, e.g. every answer scores 2.0) teach nothing either, but may also mean the task is solved:
after as many such steps in a row each one prints a warning, or, with ``constant_action="stop"``, the run stops.

    tap = RewardTap()
    reward_funcs = tap.wrap([format_reward, accuracy_reward])           # what GRPOTrainer gets
    monitor = RewardHealthMonitor(tap, weights=[1.0, 1.0], num_generations=8, max_bad_steps=10, constant_action="warn")
    trainer = GRPOTrainer(..., reward_funcs=reward_funcs, callbacks=[monitor])
    trainer.train()
    if monitor.stop_message: ...                                        # the run was stopped

The tap records what each reward function returned since the last optimiser step, so the monitor works from the raw
rewards and does not depend on TRL's logging interval or metric names. `reward_health` is the pure maths.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from accelerate.utils import gather_object
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from seer.rl.rewards import RewardFunc
from seer.train.run_dir import add_step_fields


@dataclass(frozen=True)
class RewardHealth:
    """What the rewards of one step looked like.

    Attributes:
        n: completions scored.
        mean: mean total (weighted-sum) reward, NaN when some reward was not finite.
        zero_variance_groups: fraction of groups (consecutive `num_generations` completions) whose totals are all
            equal: GRPO gets no signal from them.
        all_zero: every total reward is exactly 0.
        non_finite: some reward function returned NaN or an infinity for some completion.
    """

    n: int
    mean: float
    zero_variance_groups: float
    all_zero: bool
    non_finite: bool

    @property
    def bad(self) -> bool:
        """A step that trains on nothing and cannot have worked: all-zero or non-finite rewards."""
        return self.all_zero or self.non_finite

    @property
    def constant(self) -> bool:
        """Every group's rewards are equal and finite (whatever the value): GRPO gets no signal from the step.
        Non-finite rewards are `bad` instead."""
        return self.n > 0 and self.zero_variance_groups == 1.0 and not self.non_finite


def reward_health(rewards: np.ndarray, weights: Sequence[float], num_generations: int) -> RewardHealth:
    """Health of one step's rewards.

    Args:
        rewards: (N, F) what each of the F reward functions gave each of the N completions; N is a multiple of
            `num_generations`, each prompt's completions consecutive (TRL's sampler order).
        weights: (F,) the reward weights; the total of a completion is the weighted sum, as TRL computes it.
        num_generations: completions per prompt (the group size G).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[1] != len(weights) or rewards.shape[0] % num_generations:
        raise ValueError(
            f"rewards: expected shape (k * {num_generations}, {len(weights)}), got {tuple(rewards.shape)}"
        )
    non_finite = not bool(np.isfinite(rewards).all())
    totals = rewards @ np.asarray(weights, dtype=np.float64)  # (N,)
    groups = totals.reshape(-1, num_generations)  # (N / G, G)
    # max == min also holds for a group of equal infinities; a NaN anywhere makes the comparison False.
    zero_variance = float(np.mean(groups.max(axis=1) == groups.min(axis=1))) if len(groups) else 0.0
    return RewardHealth(
        n=int(rewards.shape[0]),
        mean=float(totals.mean()) if not non_finite and len(totals) else math.nan,
        zero_variance_groups=zero_variance,
        all_zero=not non_finite and bool(np.all(totals == 0.0)),
        non_finite=non_finite,
    )


class RewardTap:
    """Records the output of wrapped reward functions until `take` collects one step's worth."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._calls: dict[str, list[list[float]]] = {}
        self.last_completions: list[Any] = []  # of the latest call, for printing raw samples
        self.last_kwargs: dict[str, list[Any]] = {}

    def wrap(self, funcs: Sequence[RewardFunc]) -> list[RewardFunc]:
        """The reward functions, each recording what it returns; names are kept (TRL's metrics use them)."""
        self._names = [f.__name__ for f in funcs]
        self._calls = {name: [] for name in self._names}
        return [self._recording(f) for f in funcs]

    def _recording(self, func: RewardFunc) -> RewardFunc:
        @functools.wraps(func)
        def recorded(completions: Sequence[Any], **kwargs: Any) -> list[float]:
            out = func(completions, **kwargs)
            # TRL turns None (abstain) into NaN; so do we, and NaN counts as not finite.
            self._calls[func.__name__].append([math.nan if r is None else float(r) for r in out])
            self.last_completions = list(completions)
            self.last_kwargs = kwargs
            return out

        return recorded

    def take(self) -> np.ndarray:
        """(N, F) every reward recorded since the last `take`, functions in `wrap` order; the record is cleared."""
        columns = [[r for call in self._calls[name] for r in call] for name in self._names]
        for name in self._names:
            self._calls[name] = []
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise RuntimeError(f"reward functions {self._names} scored different numbers of completions: {lengths}")
        n = lengths.pop() if lengths else 0
        return np.array(columns, dtype=np.float64).T.reshape(n, len(self._names))


class RewardHealthMonitor(TrainerCallback):
    """Checks the rewards of every step; stops training after `max_bad_steps` bad steps in a row.

    Constant rewards (every group without variance, any value) for `max_bad_steps` steps in a row print a warning
    line to stderr on every such step, or, with ``constant_action="stop"``, stop training as bad steps do.

    Logs ``health/zero_variance_groups`` (fraction of groups without reward variance), ``health/reward_mean``,
    ``health/bad_reward_steps`` (the current run of bad steps) and ``health/constant_reward_steps`` (the current run of
    constant steps) with the step's metrics.
    """

    def __init__(
        self, tap: RewardTap, weights: Sequence[float], num_generations: int, max_bad_steps: int,
        constant_action: Literal["warn", "stop"] = "warn",
    ) -> None:  # fmt: skip
        if max_bad_steps < 1:
            raise ValueError(f"max_bad_steps: expected >= 1, got {max_bad_steps}")
        if constant_action not in ("warn", "stop"):
            raise ValueError(f"constant_action: expected 'warn' or 'stop', got {constant_action!r}")
        self.tap = tap
        self.weights = list(weights)
        self.num_generations = num_generations
        self.max_bad_steps = max_bad_steps
        self.constant_action = constant_action
        self.bad_steps = 0  # consecutive
        self.first_bad_step: int | None = None
        self.constant_steps = 0  # consecutive
        self.first_constant_step: int | None = None
        self.last: RewardHealth | None = None
        self.stop_message: str | None = None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        # Each process scored its share of the step; a group may straddle processes, and every process must take
        # the same decision, so all of them judge the whole step: the shares concatenated in rank order are the
        # sampler's order (identity with one process).
        rewards = np.array(gather_object(self.tap.take().tolist()), dtype=np.float64).reshape(-1, len(self.weights))
        if len(rewards) == 0:  # nothing was generated since the last step
            return control
        self.last = reward_health(rewards, self.weights, self.num_generations)
        step = state.global_step
        self.bad_steps = self.bad_steps + 1 if self.last.bad else 0
        self.first_bad_step = (self.first_bad_step or step) if self.last.bad else None
        self.constant_steps = self.constant_steps + 1 if self.last.constant else 0
        self.first_constant_step = (self.first_constant_step or step) if self.last.constant else None
        if self.bad_steps >= self.max_bad_steps:
            what = "not finite (a reward function returned NaN or inf)" if self.last.non_finite else "all zero"
            self.stop_message = (
                f"reward health: rewards were {what} for {self.bad_steps} steps in a row "
                f"(steps {self.first_bad_step}-{step}), so training stopped: GRPO has nothing to learn "
                f"from. Check that the model answers in the rewarded format (print a few completions) and that the "
                f"reward functions work; max_bad_reward_steps={self.max_bad_steps} sets the patience."
            )
            control.should_training_stop = True
        elif self.constant_steps >= self.max_bad_steps:
            what = (
                f"every group's rewards were equal (zero variance; mean {self.last.mean:.4g}) for "
                f"{self.constant_steps} steps in a row (steps {self.first_constant_step}-{step})"
            )
            if self.constant_action == "stop":
                self.stop_message = (
                    f"reward health: {what}, so training stopped: GRPO has nothing to learn from. The task may be "
                    "solved or the reward may not tell answers apart (print a few completions); "
                    f"constant_reward_action: warn only warns; max_bad_reward_steps={self.max_bad_steps} sets the "
                    "patience."
                )
                control.should_training_stop = True
            elif state.is_world_process_zero:
                print(f"warning: reward health, step {step}: {what}: GRPO learns nothing", file=sys.stderr)
        return control

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl:
        if self.last is None:
            return control
        fields = {
            "health/zero_variance_groups": self.last.zero_variance_groups,
            "health/reward_mean": self.last.mean,
            "health/bad_reward_steps": float(self.bad_steps),
            "health/constant_reward_steps": float(self.constant_steps),
        }
        add_step_fields(state, logs, fields)
        return control


class JudgeHealthMonitor(TrainerCallback):
    """Watches a model judge (RLMT's evaluator) through the step's logged metrics; warns, or stops, when it fails.

    Three alarms, each a step whose logs show it (steps without the metric are not counted):
    - ``fidelity/agreement`` (judge-oracle agreement on the pairs the oracle decides) below `min_agreement`: the
      policy may be gaming the judge, or the judge is wrong;
    - ``fidelity/judge_prefers_failing`` (of the sampled rollouts the oracle fails, the fraction the judge rewards
      above 0.5) above `max_prefers_failing`: the same, seen when no pair is decisive;
    - ``rlmt/judge_no_answer`` (fraction of judge answers that never reached ``<answer>``) at or above
      `max_no_answer` (1.0: every answer malformed): the reward then carries no judgement.

    Every alarm prints a warning line to stderr. With ``stop=True``, `patience` alarming steps in a row stop training
    (``stop_message`` says why; the caller exits 1, as for bad rewards).
    """

    def __init__(self, min_agreement: float | None, max_no_answer: float | None, stop: bool, patience: int,
                 max_prefers_failing: float | None = None) -> None:  # fmt: skip
        if patience < 1:
            raise ValueError(f"patience: expected >= 1, got {patience}")
        self.min_agreement, self.max_no_answer = min_agreement, max_no_answer
        self.max_prefers_failing = max_prefers_failing
        self.stop, self.patience = stop, patience
        self.alarms_in_a_row = 0
        self.stop_message: str | None = None

    def alarm(self, logs: dict[str, float]) -> str | None:
        """What is wrong in one step's logs, or None."""
        agreement, no_answer = logs.get("fidelity/agreement"), logs.get("rlmt/judge_no_answer")
        if self.min_agreement is not None and agreement is not None and agreement < self.min_agreement:
            return f"judge-oracle agreement {agreement:.3f} < min_agreement {self.min_agreement}"
        fooled, limit = logs.get("fidelity/judge_prefers_failing"), self.max_prefers_failing
        if limit is not None and fooled is not None and fooled > limit:
            return f"the judge preferred {fooled:.0%} of the rollouts the oracle fails (max_judge_prefers_failing " \
                   f"{limit})"  # fmt: skip
        if self.max_no_answer is not None and no_answer is not None and no_answer >= self.max_no_answer:
            return f"{no_answer:.0%} of the judge's answers never reached <answer> (max_judge_no_answer " \
                   f"{self.max_no_answer})"  # fmt: skip
        return None

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl:
        if logs is None or "loss" not in logs:
            return control
        what = self.alarm(logs)
        self.alarms_in_a_row = self.alarms_in_a_row + 1 if what else 0
        if what is None:
            return control
        if state.is_world_process_zero:
            print(f"warning: judge health, step {state.global_step}: {what}", file=sys.stderr)
        if self.stop and self.alarms_in_a_row >= self.patience:
            self.stop_message = (
                f"judge health: {what}, for {self.alarms_in_a_row} logged steps in a row (up to step "
                f"{state.global_step}), so training stopped: the reward no longer measures what it should. "
                "judge_health_action: warn only warns; judge_health_patience sets the patience."
            )
            control.should_training_stop = True
        return control
