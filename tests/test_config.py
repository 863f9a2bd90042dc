"""seer.config: recipe defaults, command-line overrides, strict keys and types, resolved-config round trip."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from seer.config import parse, save_config
from seer.errors import SeerError
from seer.train import pretrain, rlmt, rlvr


@dataclass
class ModelArgs:
    backend: Literal["janus", "harmon"] = field(default="janus", metadata={"help": "backend"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})


@dataclass
class RunArgs:
    learning_rate: float = field(default=1e-5, metadata={"help": "lr"})
    output_dir: str | None = field(default=None, metadata={"help": "out"})
    resume: bool = field(default=False, metadata={"help": "resume"})
    targets: list[str] = field(default_factory=lambda: ["q_proj"], metadata={"help": "targets"})

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


TYPES = (ModelArgs, RunArgs)


def write(tmp_path, text):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return str(p)


def test_defaults_without_recipe():
    m, r = parse([], TYPES)
    assert (m.backend, m.lora_r, r.learning_rate, r.resume, r.targets) == ("janus", 8, 1e-5, False, ["q_proj"])


def test_recipe_sets_defaults_and_cli_overrides(tmp_path):
    recipe = write(tmp_path, "backend: harmon\nlora_r: 16\nlearning_rate: 1e-4\ntargets: [a, b]\n")
    m, r = parse(["--config", recipe, "--lora_r", "32"], TYPES)
    assert m.backend == "harmon"  # from the recipe
    assert m.lora_r == 32  # the command line wins
    assert r.learning_rate == pytest.approx(1e-4)  # PyYAML reads "1e-4" as a string; coerced to float
    assert r.targets == ["a", "b"]
    _, r2 = parse(["--config", recipe, "--resume"], TYPES)
    assert r2.resume is True


@pytest.mark.parametrize(
    "text, needle",
    [
        ("lora_rank: 8\n", "unknown key 'lora_rank'"),
        ("lora_r: eight\n", "key 'lora_r': expected an integer"),
        ("lora_r: true\n", "key 'lora_r': expected an integer"),
        ("backend: chameleon\n", "key 'backend': expected one of ['janus', 'harmon']"),
        ("resume: 1\n", "key 'resume': expected true or false"),
        ("learning_rate: fast\n", "key 'learning_rate': expected a number"),
        ("targets: q_proj\n", "key 'targets': expected a list"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_recipe_names_file_and_key(tmp_path, text, needle):
    recipe = write(tmp_path, text)
    with pytest.raises(SeerError) as e:
        parse(["--config", recipe], TYPES)
    msg = str(e.value)
    assert needle in msg and recipe in msg and "\n" not in msg


def test_missing_recipe_file(tmp_path):
    with pytest.raises(SeerError, match="recipe file not found"):
        parse(["--config", str(tmp_path / "nope.yaml")], TYPES)


def test_unknown_cli_option_and_bad_cli_value():
    with pytest.raises(SeerError, match="unknown option '--lora_rank'"):
        parse(["--lora_rank", "4"], TYPES)
    with pytest.raises(SeerError, match="invalid int value"):
        parse(["--lora_r", "four"], TYPES)


def test_post_init_check_becomes_seer_error():
    with pytest.raises(SeerError, match="learning_rate must be > 0"):
        parse(["--learning_rate", "-1"], TYPES)


def test_saved_config_reruns_to_the_same_values(tmp_path):
    first = parse(["--backend", "harmon", "--learning_rate", "3e-4", "--targets", "x", "y"], TYPES)
    path = save_config(tmp_path / "run", *first)
    assert yaml.safe_load(path.read_text())["learning_rate"] == pytest.approx(3e-4)
    again = parse(["--config", str(path)], TYPES)
    assert again == first
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic write leaves no temp file


@pytest.mark.parametrize("stage", ["rlvr", "rlmt"])
def test_the_embedded_recipes_are_what_seer_run_uses(stage):
    """`seer run` takes each stage's dataclass defaults; `recipes/<stage>/shapeworld-tiny.yaml` must say the same, so
    that `seer rlvr/rlmt --config` on it reproduces a `seer run` stage (RLMT's recipe once said 50 steps against 40)."""
    dtype = {"rlvr": rlvr.RLVRArgs, "rlmt": rlmt.RLMTArgs}[stage]
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(dtype)}  # fmt: skip
    recipe = Path(__file__).parents[1] / "recipes" / stage / "shapeworld-tiny.yaml"
    values = yaml.safe_load(recipe.read_text())
    assert len(values) > 20 and {k: v for k, v in values.items() if defaults[k] != v} == {}


def test_pretraining_without_a_recipe_uses_the_shipped_models_corpus():
    """`seer pretrain` with no --config once trained run23's corpus while the recipe and the help named run33's."""
    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "pretrain" / "shapeworld-tiny.yaml").read_text())
    assert pretrain.PretrainArgs(output_dir="x").corpus == recipe["corpus"] == "run33"
