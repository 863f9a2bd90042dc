"""benchmarks/rlmt_step.py at the tiny shape on the CPU: one timed RLMT step whose measured parts add up to the step.

The GPU figures (Janus-Pro-1B shape) are in benchmarks/RESULTS.md; this checks the script itself: its timers are
exclusive, every part of the step is measured (the unmeasured rest is small), and the substitutions make the reward
render and judge every descriptor of a group.
"""

import importlib.util
import json
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rlmt_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rlmt_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timers_are_exclusive(bench):
    timers = bench.Timers(cuda=False)
    timers.active = True
    with timers.part("outer"):
        time.sleep(0.05)
        with timers.part("inner"):
            time.sleep(0.1)
        time.sleep(0.05)
    assert timers.seconds["inner"] == pytest.approx(0.1, abs=0.03)
    assert timers.seconds["outer"] == pytest.approx(0.1, abs=0.03)  # the inner part's 0.1 s is not the outer's


def test_one_tiny_step_is_split_into_parts_that_sum_to_the_step(bench, tmp_path):
    out = tmp_path / "step.json"
    start = time.perf_counter()
    figures = bench.main(["--shape", "shapeworld-tiny", "--prompts", "2", "--generations", "2", "--warmup", "0",
                          "--out", str(out)])  # fmt: skip
    wall = time.perf_counter() - start
    assert json.loads(out.read_text()) == json.loads(json.dumps(figures))
    step, parts = figures["step_seconds"], figures["parts"]
    assert 0 < step < wall
    for name in bench.PARTS:  # each was measured, and took time
        assert parts[name] > 0, name
    measured = sum(value for name, value in parts.items() if name != "unaccounted")
    assert measured == pytest.approx(step, rel=0.1)  # the timers cover the step
    assert parts["optimizer_step"] == pytest.approx(sum(figures["optimizer_step_parts"].values()))
    assert figures["samples_per_second"] == pytest.approx(4 / step)
    # The substitutions: every reprompt is a valid, distinct descriptor, so all 4 are rendered and judged.
    assert figures["reward_metrics"]["rlmt/valid"] == 1.0
    assert figures["reward_metrics"]["rlmt/distinct_descriptors"] == 1.0
