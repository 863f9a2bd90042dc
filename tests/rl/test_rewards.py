"""RLVR rewards on a table of completions (rewards derived by hand), and the reward-health monitor.

The accuracy column follows the authors' code (seer-anonymous open_r1/grpo_rec.py): first ``<answer>(.*?)</answer>``
on one line, then the first case-sensitive ``Yes``/``No`` inside, compared lower-cased with the solution.
"""

import math

import numpy as np
import pytest
from checklist_example import ICY_SCENE, NO_RECALL, RIGHT, icy_item
from transformers import TrainerControl, TrainerState

from seer.rl.health import RewardHealthMonitor, RewardTap, reward_health
from seer.rl.rewards import (
    RLVR_REWARDS,
    accuracy_reward,
    after_response_prefix,
    checklist_reward,
    extract_verdict,
    format_reward,
)
from seer.worlds.shapeworld.checklist import Checklist
from seer.worlds.shapeworld.grammar import parse

# (completion, solution, format reward, accuracy reward)
TABLE = [
    ("<think> the first shows a red circle </think> <answer> Yes </answer>", "Yes", 1.0, 1.0),  # well-formed, right
    ("<think> the second is closer </think> <answer> No </answer>", "Yes", 1.0, 0.0),  # well-formed, wrong
    ("the first image is better", "Yes", 0.0, 0.0),  # malformed: no tags at all
    ("<think> a </think> <answer> Yes </answer> because it is red", "Yes", 0.0, 1.0),  # text after the answer
    ("<think> a </think> <answer> yes </answer>", "Yes", 1.0, 0.0),  # lower-case yes: the verdict regex is Yes|No
    ("<answer> Yes </answer>", "Yes", 0.0, 1.0),  # missing think
    ("<think> a </think> <answer> No </answer> <answer> Yes </answer>", "Yes", 0.0, 0.0),  # two answers: first counts
    ("<think> a </think> <answer> Yes </answer> <answer> No </answer>", "Yes", 0.0, 1.0),  # two answers, first right
    ("<think> a </think> <answer>\nYes\n</answer>", "Yes", 1.0, 0.0),  # answer across lines: no DOTALL in the regex
    ("<think> a </think> <answer> Yes </answer>", "yes", 1.0, 1.0),  # the comparison itself ignores case
    ("<think> a </think> <answer> Nope </answer>", "No", 1.0, 1.0),  # the authors' search finds "No" in "Nope"
    ("<think> a </think> <answer> </answer>", "No", 1.0, 0.0),  # empty answer: format only
    ("<think> a </think> <answer> Yes", "Yes", 0.0, 0.0),  # truncated: never closed
]


def test_rewards_after_a_response_prefix_score_the_whole_answer():
    """With the answer's start written in the prompt, TRL's completion is only the rest: "<think>" is not in it."""
    fmt, acc = after_response_prefix("<think> the first image shows", [format_reward, accuracy_reward])
    rest = [[{"role": "assistant", "content": "a red circle </think> <answer> No </answer>"}],
            "<think> a </think> <answer> Yes </answer>"]  # a second <think>: malformed as a whole  # fmt: skip
    assert fmt(rest) == [1.0, 0.0] and format_reward(rest) == [0.0, 1.0]
    assert acc(rest, solution=["No", "Yes"]) == [1.0, 1.0]
    assert [f.__name__ for f in (fmt, acc)] == ["format_reward", "accuracy_reward"]  # TRL's metric names
    assert after_response_prefix("", [format_reward]) == [format_reward]


@pytest.mark.parametrize("completion, solution, fmt, acc", TABLE)
def test_reward_table(completion, solution, fmt, acc):
    assert format_reward([completion]) == [fmt]
    assert accuracy_reward([completion], solution=[solution]) == [acc]
    # TRL passes conversational completions as one assistant message: same rewards
    message = [{"role": "assistant", "content": completion}]
    assert format_reward([message]) == [fmt]
    assert accuracy_reward([message], solution=[solution]) == [acc]


def test_rewards_score_a_batch_in_order_and_sum_to_0_1_2():
    completions = [row[0] for row in TABLE]
    solutions = [row[1] for row in TABLE]
    totals = [f + a for f, a in zip(format_reward(completions), accuracy_reward(completions, solution=solutions))]
    assert totals == [row[2] + row[3] for row in TABLE]
    assert set(totals) == {0.0, 1.0, 2.0}
    assert list(RLVR_REWARDS) == ["format", "accuracy"]  # the order of RLVR's reward_weights


def test_extract_verdict_reads_the_first_answer_block():
    assert extract_verdict("<answer> No </answer> <answer> Yes </answer>") == "No"
    assert extract_verdict("<answer> maybe </answer>") is None
    assert extract_verdict("no tags") is None


# ---- reward health ----


def test_reward_health_hand_values():
    # two groups of G=4; columns: format, accuracy; weights 1 and 1
    rewards = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [1, 0], [1, 1], [0, 0], [1, 0]], dtype=float)
    health = reward_health(rewards, [1.0, 1.0], num_generations=4)
    # totals: 2 2 2 2 | 1 2 0 1 -> group 1 has no variance, group 2 has
    assert health.zero_variance_groups == 0.5
    assert health.mean == pytest.approx((8 + 4) / 8)
    assert not health.all_zero and not health.non_finite and not health.bad


def test_reward_health_weights_decide_the_total():
    rewards = np.array([[0, 1], [0, 0]], dtype=float)
    assert reward_health(rewards, [1.0, 0.0], num_generations=2).all_zero  # accuracy weighted 0: totals 0 0
    assert not reward_health(rewards, [1.0, 1.0], num_generations=2).all_zero


def test_reward_health_all_zero_and_non_finite_are_bad():
    zeros = reward_health(np.zeros((4, 2)), [1.0, 1.0], num_generations=2)
    assert zeros.all_zero and zeros.bad and zeros.zero_variance_groups == 1.0
    nan = reward_health(np.array([[1.0, math.nan], [1.0, 1.0]]), [1.0, 1.0], num_generations=2)
    assert nan.non_finite and nan.bad and math.isnan(nan.mean) and not nan.all_zero
    with pytest.raises(ValueError, match="expected shape"):
        reward_health(np.zeros((3, 2)), [1.0, 1.0], num_generations=2)


def test_reward_health_constant_whatever_the_value():
    def health(totals):  # one reward column of weight 1, groups of G=2
        return reward_health(np.array(totals, dtype=float).reshape(-1, 1), [1.0], num_generations=2)

    assert health([2, 2, 2, 2]).constant and not health([2, 2, 2, 2]).bad  # every answer scores 2
    assert health([2, 2, 1, 1]).constant and health([2, 2, 1, 1]).zero_variance_groups == 1.0  # equal within groups
    assert not health([2, 2, 1, 2]).constant  # one group still tells answers apart
    assert health([0, 0, 0, 0]).constant and health([0, 0, 0, 0]).bad  # all zero is constant too (and bad)
    assert not health([math.inf, math.inf]).constant and not health([math.nan, math.nan]).constant  # non-finite


def test_reward_tap_records_in_function_order_and_keeps_names():
    tap = RewardTap()
    wrapped = tap.wrap([format_reward, accuracy_reward])
    assert [f.__name__ for f in wrapped] == ["format_reward", "accuracy_reward"]  # TRL names metrics after them
    completions = ["<think> a </think> <answer> Yes </answer>", "<answer> No </answer>"]
    assert wrapped[0](completions) == [1.0, 0.0]
    assert wrapped[1](completions, solution=["Yes", "No"]) == [1.0, 1.0]
    assert tap.take().tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert tap.take().shape == (0, 2)  # cleared


class Run:
    """Drives a monitor the way the trainer does: score one step's completions, then end the step."""

    def __init__(self, funcs, max_bad_steps, num_generations=2, constant_action="warn"):
        self.tap = RewardTap()
        self.funcs = self.tap.wrap(funcs)
        self.monitor = RewardHealthMonitor(self.tap, [1.0, 1.0], num_generations, max_bad_steps, constant_action)
        self.state, self.control = TrainerState(), TrainerControl()

    def step(self, completions, solution="Yes"):
        for func in self.funcs:
            func(completions, solution=[solution] * len(completions))
        self.state.global_step += 1
        self.monitor.on_step_end(None, self.state, self.control)


def _abstain(completions, **kwargs):
    return [None] * len(completions)  # TRL turns None into NaN


BAD = ["nothing", "nothing"]  # totals 0 0
GOOD = ["<think> a </think> <answer> Yes </answer>", "nothing"]  # totals 2 0
SOLVED = ["<think> a </think> <answer> Yes </answer>"] * 2  # totals 2 2: constant, not zero


def test_monitor_stops_after_n_all_zero_steps_and_not_before():
    run = Run([format_reward, accuracy_reward], max_bad_steps=3)
    run.step(BAD)
    run.step(BAD)
    assert not run.control.should_training_stop and run.monitor.bad_steps == 2
    run.step(GOOD)  # a good step resets the count
    assert run.monitor.bad_steps == 0 and not run.control.should_training_stop
    run.step(BAD)
    run.step(BAD)
    assert not run.control.should_training_stop  # two in a row: not yet
    run.step(BAD)  # steps 4, 5, 6 bad
    assert run.control.should_training_stop
    assert "all zero for 3 steps in a row (steps 4-6)" in run.monitor.stop_message


def test_monitor_stops_on_non_finite_rewards():
    run = Run([format_reward, _abstain], max_bad_steps=2)
    run.step(GOOD)  # format rewards fine, but the other function returns NaN: bad
    assert not run.control.should_training_stop
    run.step(GOOD)
    assert run.control.should_training_stop and "not finite" in run.monitor.stop_message


def test_monitor_logs_zero_variance_fraction_with_the_step():
    run = Run([format_reward, accuracy_reward], max_bad_steps=5)
    run.step(GOOD + BAD)  # group 1: totals 2, 0 (variance); group 2: 0, 0 (none)
    logs = {"loss": 0.1}
    run.state.log_history.append(dict(logs))  # the trainer appends its copy before calling the callbacks
    run.monitor.on_log(None, run.state, run.control, logs=logs)
    assert logs["health/zero_variance_groups"] == 0.5
    assert logs["health/reward_mean"] == 0.5
    assert run.state.log_history[-1]["health/zero_variance_groups"] == 0.5


def test_monitor_warns_on_constant_non_zero_rewards_after_n_steps_and_does_not_stop(capsys):
    run = Run([format_reward, accuracy_reward], max_bad_steps=3)
    run.step(SOLVED)
    run.step(SOLVED)
    assert run.monitor.constant_steps == 2 and capsys.readouterr().err == ""  # not yet
    run.step(SOLVED)
    err = capsys.readouterr().err
    assert err.startswith("warning: reward health, step 3: every group's rewards were equal (zero variance; mean 2)")
    assert "for 3 steps in a row (steps 1-3)" in err and err.count("\n") == 1
    run.step(SOLVED)
    assert "step 4:" in capsys.readouterr().err  # every further constant step warns
    assert not run.control.should_training_stop and run.monitor.stop_message is None and run.monitor.bad_steps == 0
    logs = {"loss": 0.1}
    run.monitor.on_log(None, run.state, run.control, logs=logs)
    assert logs["health/constant_reward_steps"] == 4.0 and logs["health/bad_reward_steps"] == 0.0
    run.step(GOOD)  # a step with variance ends the run of constant ones
    assert run.monitor.constant_steps == 0 and capsys.readouterr().err == ""


def test_monitor_stops_on_constant_rewards_when_configured(capsys):
    run = Run([format_reward, accuracy_reward], max_bad_steps=3, constant_action="stop")
    run.step(GOOD)
    run.step(BAD)  # all zero: constant too (and bad, 1 in a row)
    run.step(SOLVED)
    assert not run.control.should_training_stop  # constant steps 2-3: two in a row
    run.step(SOLVED)
    assert run.control.should_training_stop and run.monitor.bad_steps == 0
    message = run.monitor.stop_message
    assert "every group's rewards were equal (zero variance; mean 2) for 3 steps in a row (steps 2-4)" in message
    assert "constant_reward_action" in message and capsys.readouterr().err == ""  # the stage prints the message
    with pytest.raises(ValueError, match="constant_action"):
        RewardHealthMonitor(RewardTap(), [1.0], 2, 3, constant_action="ignore")


def test_checklist_reward_scores_each_answer_against_its_own_checklist():
    expected = Checklist.of(parse(ICY_SCENE), icy_item(), wholes=True)
    as_message = [{"role": "assistant", "content": RIGHT}]
    rewards = checklist_reward([RIGHT, NO_RECALL, as_message, RIGHT], [expected, expected, expected, None])
    assert rewards == [1.0, 1 / 5, 1.0, 0.0]  # a prompt pair's row carries no checklist: 0 for the whole group
