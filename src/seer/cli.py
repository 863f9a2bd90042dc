"""The `seer` command line: one subcommand per job, each configured by dataclasses (see seer.config).

    seer data --out data/vie               # build the VIE training and evaluation sets
    seer data --validate my_items.jsonl    # check a VIE file before a long run
    seer env                               # versions of seer and its foundations

Each command lives in its own module, which exposes `ARG_TYPES` (its dataclasses) and `main(*args) -> int`.
The modules are imported only when their command runs, so `seer --help` stays fast. A `SeerError` (bad
input) is printed as one line and exits with status 2; `--debug` shows the full traceback instead.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from seer import __version__
from seer.errors import SeerError

# name -> (module, one-line description). A plain dict, not a registry: adding a command is one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("seer.run", "the whole method on the embedded default: data -> RLVR -> RLMT -> evaluation -> report"),
    "data": ("seer.data.build", "build the VIE training/evaluation sets, or --validate a VIE file"),
    "env": ("seer.env", "print the versions of seer, python, torch and the HF libraries"),
    "pretrain": ("seer.train.pretrain", "pre-train the embedded ShapeWorld UMM (VQ tokenizer, then LM)"),
    "rlvr": ("seer.train.rlvr", "stage 1: train the evaluator adapter with verifiable rewards (GRPO + curriculum)"),
    "eval": ("seer.eval.command", "evaluate on ShapeWorld: --suite base | evaluator (an RLVR run) | reprompt (an RLMT run)"),
    "rlmt": ("seer.train.rlmt", "stage 2: train the reprompter adapter with the evaluator's P(Yes) as reward (GRPO)"),
    "reprompt": ("seer.reprompt_cmd", "prompt + instruction -> descriptor -> image with a trained reprompter"),
}

USAGE = "usage: seer <command> [--config recipe.yaml] [--key value ...] [--debug]\n\ncommands:\n" + "\n".join(
    f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()
)


def run(argv: list[str]) -> int:
    """Run one command; returns the process exit status. Raises SeerError for bad input."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"seer {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise SeerError(f"unknown command {name!r}; expected one of: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    from seer.config import parse

    args = parse(rest, module.ARG_TYPES, prog=f"seer {name}")
    return int(module.main(*args) or 0)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    # TRL 1.16 and PEFT 0.21 read the model's `is_gradient_checkpointing`, which transformers 5.24 deprecates: a
    # FutureWarning about their code, not the user's, at every GRPO checkpoint. The CLI hides that one.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return run(argv)
    except SeerError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
