"""The curriculum's schedule and switch rule: stage 2 starts exactly when the rules say, and not before."""

import pytest

from seer.data.curriculum import (
    READ_AHEAD_STEPS,
    CurriculumState,
    SwitchRule,
    initial_state,
    needs_evaluation,
    pool_index,
    record_evaluation,
    slot_step,
    stage_at,
)


def stages(state, steps=range(1, 13)):
    return [stage_at(step, state) for step in steps]


def test_step_rule_switches_after_the_step():
    state = initial_state(SwitchRule(switch_step=5, threshold=None, eval_steps=1))
    assert state.first_stage2_step == 6 and state.reason == "step"
    assert stages(state, range(1, 9)) == [1, 1, 1, 1, 1, 2, 2, 2]


def test_step_rule_zero_means_stage_2_only_and_none_means_stage_1_only():
    assert stages(initial_state(SwitchRule(0, None, 1)), range(1, 4)) == [2, 2, 2]
    assert stages(initial_state(SwitchRule(None, None, 1)), range(1, 100)) == [1] * 99


def test_threshold_rule_switches_after_passing_and_not_before():
    rule = SwitchRule(switch_step=None, threshold=0.9, eval_steps=2)
    state = initial_state(rule)
    assert not needs_evaluation(1, rule, state) and needs_evaluation(2, rule, state)
    state = record_evaluation(2, 0.85, rule, state)  # below the threshold: no switch
    assert state.first_stage2_step is None and stages(state) == [1] * 12
    state = record_evaluation(4, 0.9, rule, state)  # reaches it (>=): decided after step 4
    # the batch of step 5 was already read when step 4 ended, so the switch takes effect at 4 + 1 + 1
    assert READ_AHEAD_STEPS == 1
    assert state.first_stage2_step == 6 and state.reason == "threshold" and state.decided_at == 4
    assert stages(state, range(1, 9)) == [1, 1, 1, 1, 1, 2, 2, 2]
    assert state.heldout == ((2, 0.85), (4, 0.9))
    assert not needs_evaluation(6, rule, state)  # nothing left to decide


def test_whichever_rule_comes_first_wins():
    rule = SwitchRule(switch_step=10, threshold=0.9, eval_steps=2)
    early = record_evaluation(4, 0.95, rule, initial_state(rule))
    assert early.first_stage2_step == 6 and early.reason == "threshold"
    late = record_evaluation(10, 0.95, rule, initial_state(rule))  # 10 + 2 = 12 is later than the step rule's 11
    assert late.first_stage2_step == 11 and late.reason == "step"


def test_no_evaluation_once_a_new_decision_could_not_come_earlier():
    rule = SwitchRule(switch_step=5, threshold=0.9, eval_steps=1)
    state = initial_state(rule)  # stage 2 from step 6
    assert needs_evaluation(3, rule, state)  # a pass now would switch at 5 < 6
    assert not needs_evaluation(4, rule, state)  # a pass now would switch at 6: no gain
    assert not needs_evaluation(3, SwitchRule(5, None, 1), state)  # no threshold rule: never


def test_state_round_trips_through_json_form():
    rule = SwitchRule(None, 0.5, 1)
    state = record_evaluation(3, 0.75, rule, record_evaluation(1, 0.25, rule, initial_state(rule)))
    assert CurriculumState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"switch_step": -1, "threshold": None, "eval_steps": 1}, "curriculum_switch_step"),
        ({"switch_step": None, "threshold": 1.5, "eval_steps": 1}, "curriculum_threshold"),
        ({"switch_step": None, "threshold": 0.5, "eval_steps": 0}, "curriculum_eval_steps"),
    ],
)
def test_bad_rules_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        SwitchRule(**kwargs)


def test_slot_step_counts_prompts_per_step():
    assert [slot_step(slot, 4) for slot in range(9)] == [1, 1, 1, 1, 2, 2, 2, 2, 3]


def test_pool_index_shows_every_pair_once_per_pass():
    size = 10
    first = [pool_index(slot, size, seed=0, stage=1) for slot in range(size)]
    second = [pool_index(slot, size, seed=0, stage=1) for slot in range(size, 2 * size)]
    assert sorted(first) == sorted(second) == list(range(size))
    assert first != second  # each pass has its own order
    assert first == [pool_index(slot, size, seed=0, stage=1) for slot in range(size)]  # deterministic
    assert first != [pool_index(slot, size, seed=1, stage=1) for slot in range(size)]
    with pytest.raises(ValueError, match="empty"):
        pool_index(0, 0, seed=0, stage=2)
