"""`seer eval --suite evaluator`: the targeted figures from hand-made results, and its one-line input errors."""

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import yaml

from seer.cli import main
from seer.embedded import load_embedded_model
from seer.errors import SeerError
from seer.eval.evaluator_suite import base_retention, figures_of, load_rlvr_run, retained, retention, summary_lines_of
from seer.models.adapters import LoraSettings
from seer.train.rlvr import RLVRArgs


def mode(accuracy, consistency, id_acc, ood_acc):
    split = {"id": {"accuracy": id_acc, "position_consistency": 0.0, "n_pairs": 4}}
    if ood_acc is not None:
        split["ood"] = {"accuracy": ood_acc, "position_consistency": 0.0, "n_pairs": 4}
    return {"accuracy": accuracy, "position_consistency": consistency, "by": {"split": split}}


def test_figures_read_the_trained_split_accuracies_and_keep_zero_shot_beside():
    results = {"zero_shot": mode(0.5, 0.1, 0.45, 0.55), "trained": mode(0.96, 0.95, 0.97, 0.89)}
    figures = figures_of(results)
    assert figures["evaluator_accuracy_id"] == {"value": 0.97, "zero_shot": 0.45, "target": ">= 0.95", "passed": True}
    assert figures["evaluator_accuracy_ood"]["value"] == 0.89 and not figures["evaluator_accuracy_ood"]["passed"]
    assert figures["position_consistency"]["passed"] and figures["position_consistency"]["zero_shot"] == 0.1


def test_a_split_without_pairs_is_reported_as_missing_and_not_passed():
    figures = figures_of({"zero_shot": mode(0.5, 0.1, 0.5, None), "trained": mode(1.0, 1.0, 1.0, None)})
    assert figures["evaluator_accuracy_ood"] == {"value": None, "zero_shot": None, "target": ">= 0.90",
                                                 "passed": False}  # fmt: skip
    lines = summary_lines_of({"figures": figures})
    assert any(line.startswith("evaluator_accuracy_ood") and "FAIL" in line for line in lines)


def test_an_rlvr_dir_needs_its_config_and_its_evaluator_adapter(tmp_path):
    with pytest.raises(SeerError, match="needs an RLVR run directory"):
        load_rlvr_run(None)
    with pytest.raises(SeerError, match="config.yaml: file not found"):
        load_rlvr_run(str(tmp_path))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 3}))
    with pytest.raises(SeerError, match="no evaluator adapter"):
        load_rlvr_run(str(tmp_path))
    (tmp_path / "evaluator").mkdir()
    (tmp_path / "evaluator" / "adapter_config.json").write_text("{}")
    args, adapter = load_rlvr_run(str(tmp_path))
    # A config without response_prefix is a run from before the key: it wrote no prefix, whatever the default is now.
    assert args == RLVRArgs(seed=3, response_prefix="") and adapter == tmp_path / "evaluator"
    assert RLVRArgs().response_prefix != ""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 3, "response_prefix": "<think> the first"}))
    assert load_rlvr_run(str(tmp_path))[0].templates().response_prefix == "<think> the first"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 3, "learning_rat": 1.0}))
    with pytest.raises(SeerError, match="unknown key 'learning_rat'"):
        load_rlvr_run(str(tmp_path))


def test_cli_evaluator_suite_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", "--suite", "evaluator", "--rlvr_dir", str(tmp_path / "none"), "--output_dir",
                 str(tmp_path / "out")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.yaml: file not found" in err[0]
    assert not (tmp_path / "out").exists()  # nothing written before the input was checked


def test_retention_allows_one_point_and_not_more():
    # 98 of 100 against 99 of 100 is one point below (float: -0.010000000000000009); 97 of 100 is two
    assert retained(0.99, 0.98) and retained(1.0, 0.99) and retained(0.5, 0.9)
    assert not retained(0.99, 0.97) and not retained(1.0, 0.989)


def test_retention_reuses_given_base_figures_and_measures_only_the_adapter(monkeypatch):
    model = load_embedded_model()
    model.add_adapter("evaluator", LoraSettings(r=4))
    args = SimpleNamespace(n_caption=8, n_vqa=8, n_qa=0, seed=0, batch_size=8, max_new_tokens=32)
    measured = retention(model, args)
    assert set(measured) == {"retained_caption_exact", "retained_vqa_yes_no"}  # n_qa=0 skips knowledge QA
    assert base_retention(measured) == {"caption_exact": measured["retained_caption_exact"]["base"],
                                        "vqa_yes_no": measured["retained_vqa_yes_no"]["base"]}  # fmt: skip
    passes_without_adapter = []
    monkeypatch.setattr(model, "no_adapter", lambda: passes_without_adapter.append(1) or nullcontext())
    reused = retention(model, args, base={"caption_exact": 0.5, "vqa_yes_no": 1.0})
    assert not passes_without_adapter  # the given base figures are not measured again
    caption, vqa = reused["retained_caption_exact"], reused["retained_vqa_yes_no"]
    assert caption["trained"] == measured["retained_caption_exact"]["trained"]
    assert caption["base"] == 0.5 and caption["delta"] == caption["trained"] - 0.5
    assert vqa["base"] == 1.0 and vqa["passed"] == retained(1.0, vqa["trained"])
