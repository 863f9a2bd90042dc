"""`seer run` end to end on the embedded model with tiny settings: every stage runs, the report's numbers are the
oracle's, a second run refuses to overwrite, and --resume keeps finished stages."""

import json

import pytest
import yaml

from seer.cli import main
from seer.eval.reprompt import win_ratio

TINY_RLVR = {
    "max_train_items": 6, "heldout_items": 0, "curriculum_threshold": None, "curriculum_switch_step": 1,
    "max_steps": 2, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 24, "save_steps": 1,
    "stage2_failures": ["naive"],
}  # fmt: skip
TINY_RLMT = {
    "max_train_items": 4, "max_steps": 2, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 24,
    "judge_max_new_tokens": 24, "fidelity_samples": 2, "save_steps": 1,
}  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    (root / "rlvr.yaml").write_text(yaml.safe_dump(TINY_RLVR))
    (root / "rlmt.yaml").write_text(yaml.safe_dump(TINY_RLMT))
    argv = ["run", "--runs_dir", str(root), "--name", "tiny", "--rlvr_config", str(root / "rlvr.yaml"),
            "--rlmt_config", str(root / "rlmt.yaml"), "--n_eval_items", "6", "--n_pair_items", "3",
            "--n_retention", "0"]  # fmt: skip
    assert main(argv) == 0
    return root, argv


def test_every_stage_writes_its_outputs_and_the_report(finished_run):
    root, _ = finished_run
    out = root / "tiny"
    for stage in ("data/train.jsonl", "rlvr/evaluator", "rlmt/reprompter", "eval-evaluator/results.json",
                  "eval-reprompt/results.json", "results.json", "report.html", "config.yaml"):  # fmt: skip
        assert (out / stage).exists(), stage
    results = json.loads((out / "results.json").read_text())
    assert set(results["seconds"]) == {"data", "rlvr", "rlmt", "eval", "total"}
    assert "reprompt/win_simple" in results["figures"] and "evaluator/position_consistency" in results["figures"]


def test_win_ratios_are_recomputed_from_the_oracle_records(finished_run):
    root, _ = finished_run
    reprompt = json.loads((root / "tiny" / "eval-reprompt" / "results.json").read_text())
    records = reprompt["records"]
    assert len(records) == 6
    ours = [r["seer"]["passed"] for r in records]
    naive = [r["naive"]["passed"] for r in records]
    assert reprompt["win_ratio"]["seer_vs_naive"]["value"] == pytest.approx(win_ratio(ours, naive))
    assert all(r["gold"]["text"] for r in records)  # the upper bound is drawn for every item
    page = (root / "tiny" / "report.html").read_text()
    assert f"{reprompt['win_ratio']['seer_vs_naive']['value']:.3f}" in page


def test_a_second_run_refuses_then_resume_keeps_the_finished_stages(finished_run, capsys):
    root, argv = finished_run
    before = (root / "tiny" / "rlvr" / "evaluator" / "adapter_model.safetensors").read_bytes()
    assert main(argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "rlvr: finished earlier" in out and "rlmt: finished earlier" in out
    assert (root / "tiny" / "rlvr" / "evaluator" / "adapter_model.safetensors").read_bytes() == before
