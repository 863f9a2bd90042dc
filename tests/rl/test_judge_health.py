"""Judge health in RLMT (`rl.health.JudgeHealthMonitor`): low judge-oracle agreement and a judge whose answers are
all malformed each print a warning, and stop the run after the patience when configured to."""

import pytest
from transformers import TrainerControl, TrainerState

from seer.config import parse
from seer.errors import SeerError
from seer.rl.health import JudgeHealthMonitor
from seer.train.rlmt import ARG_TYPES


def feed(monitor, steps):
    """Log one metrics dict per step; returns the control of each step."""
    state, controls = TrainerState(), []
    for step, logs in enumerate(steps, start=1):
        state.global_step = step
        control = TrainerControl()
        monitor.on_log(None, state, control, logs={"loss": 0.1, **logs})
        controls.append(control.should_training_stop)
    return controls


def test_low_agreement_warns_each_step_but_does_not_stop_when_set_to_warn(capsys):
    monitor = JudgeHealthMonitor(min_agreement=0.6, max_no_answer=None, stop=False, patience=1)
    stops = feed(monitor, [{"fidelity/agreement": 0.5}, {"fidelity/agreement": 0.7}, {"fidelity/agreement": 0.2}])
    err = capsys.readouterr().err.splitlines()
    assert stops == [False, False, False] and monitor.stop_message is None
    assert [line.split(":")[1] for line in err] == [" judge health, step 1", " judge health, step 3"]
    assert "agreement 0.500 < min_agreement 0.6" in err[0]


def test_a_judge_preferring_failing_rollouts_stops_after_the_patience():
    """With no decisive pair there is no agreement to watch; the judge rewarding what the oracle fails still shows."""
    monitor = JudgeHealthMonitor(min_agreement=0.6, max_no_answer=None, stop=True, patience=2, max_prefers_failing=0.5)
    logs = [{"fidelity/judge_prefers_failing": 0.75}, {"fidelity/judge_prefers_failing": 0.5},
            {"fidelity/judge_prefers_failing": 0.625}, {"fidelity/judge_prefers_failing": 1.0}]  # fmt: skip
    assert feed(monitor, logs) == [False, False, False, True]  # 0.5 is not above the limit: the run restarts
    assert "the judge preferred 100% of the rollouts the oracle fails" in monitor.stop_message


def test_all_malformed_judge_answers_stop_after_the_patience():
    monitor = JudgeHealthMonitor(min_agreement=None, max_no_answer=1.0, stop=True, patience=2)
    # steps without the metric do not count; a healthy step resets the run of alarms
    logs = [{"rlmt/judge_no_answer": 1.0}, {"rlmt/judge_no_answer": 0.5}, {"rlmt/judge_no_answer": 1.0},
            {"rlmt/judge_no_answer": 1.0}]  # fmt: skip
    assert feed(monitor, logs) == [False, False, False, True]
    assert "100% of the judge's answers never reached <answer>" in monitor.stop_message
    assert "steps in a row (up to step 4)" in monitor.stop_message


def test_agreement_at_the_threshold_and_missing_metrics_are_not_alarms():
    monitor = JudgeHealthMonitor(min_agreement=0.6, max_no_answer=1.0, stop=True, patience=1)
    assert feed(monitor, [{"fidelity/agreement": 0.6, "rlmt/judge_no_answer": 0.99}, {}]) == [False, False]


@pytest.mark.parametrize("argv", [["--min_agreement", "1.5"], ["--max_judge_no_answer", "-0.1"],
                                  ["--max_judge_prefers_failing", "2"],
                                  ["--judge_health_action", "explode"], ["--judge_health_patience", "0"]])  # fmt: skip
def test_bad_judge_health_keys_are_one_line_errors(argv):
    with pytest.raises(SeerError, match=argv[0].lstrip("-")):
        parse(argv, ARG_TYPES, prog="seer rlmt")
