"""benchmarks/rlmt_step.py at the tiny shape on the CPU: one timed RLMT step whose measured parts add up to the step.

The GPU figures (Janus-Pro-1B shape) are in benchmarks/RESULTS.md; this checks the script itself: its timers are
exclusive, every part of the step is measured (the unmeasured rest is small), and the substitutions make the reward
render and judge every descriptor of a group.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "rlmt_step.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("rlmt_step")


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
    assert (figures["processes"], figures["completions_per_process_call"]) == (1, 4)
    # The substitutions: every reprompt is a valid, distinct descriptor, so all 4 are rendered and judged.
    assert figures["reward_metrics"]["rlmt/valid"] == 1.0
    assert figures["reward_metrics"]["rlmt/distinct_descriptors"] == 1.0


def test_two_processes_split_each_step_between_them(tmp_path):
    """Under torchrun (a gloo group on the CPU, as accelerate launch makes one per GPU) each process keeps the
    one-process share: the step holds twice the items, and each process's reward sees half of its completions."""
    out = tmp_path / "step.json"
    # --standalone: a rendezvous on a free local port (no fixed port to collide on, nothing off the machine)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
               "--shape", "shapeworld-tiny", "--prompts", "2", "--generations", "2", "--policy_tokens", "8",
               "--judge_tokens", "8", "--warmup", "0", "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    figures = json.loads(out.read_text())
    assert figures["processes"] == 2
    assert figures["prompts_per_step"] == 4 and figures["completions_per_step"] == 8
    assert figures["completions_per_process_call"] == 4
    assert (figures["max_completion_length"], figures["judge_max_new_tokens"]) == (8, 8)
