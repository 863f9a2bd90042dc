"""The `seer` entry point: exit codes, one-line errors, resolved config, --debug."""

import json
import subprocess
import sys

import pytest

from seer.cli import COMMANDS, main
from seer.errors import SeerError


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["data", "--bogus", "1"], "unknown option '--bogus'"),
        (["data", "--seed", "many"], "invalid int value"),
        (["data"], "--out"),  # neither --out nor --validate
    ],
)
def test_bad_invocations_exit_2_with_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_debug_reraises_instead_of_one_line():
    with pytest.raises(SeerError):
        main(["frobnicate", "--debug"])


def test_console_script_builds_and_validates(tmp_path):
    """The installed `seer` script end to end: build, then validate what it wrote (a real subprocess)."""
    out = tmp_path / "vie"
    seer = [sys.executable, "-m", "seer.cli"]
    build = subprocess.run([*seer, "data", "--out", str(out)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == 300 and json.loads(lines[0])["split"] == "id"
    check = subprocess.run([*seer, "data", "--validate", str(out / "eval.jsonl")], capture_output=True, text=True)
    assert check.returncode == 0 and "600" in check.stdout
    again = subprocess.run([*seer, "data", "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "overwrite" in again.stderr  # refuses to clobber the first run's files


def test_resolved_config_rebuilds_the_same_files(tmp_path):
    assert main(["data", "--out", str(tmp_path / "a"), "--seed", "7", "--n_train_per_cell", "2"]) == 0
    config = tmp_path / "a" / "config.yaml"
    assert "seed: 7" in config.read_text()
    # Re-run from the saved config into another directory: byte-identical files.
    assert main(["data", "--config", str(config), "--out", str(tmp_path / "b")]) == 0
    for name in ("train.jsonl", "eval.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
