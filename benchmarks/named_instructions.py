"""A probe of recall: a copy of a `seer run` folder whose evaluation instructions end with the names of the concepts
they ask for, so that the judge and the reprompter can be measured as if they knew what each phrasing means.

    python benchmarks/named_instructions.py runs/NAME runs/NAME-named
    python benchmarks/judge_errors.py runs/NAME-named [--zero_shot]
    seer eval --suite reprompt --rlmt_dir runs/NAME/rlmt --vie_file runs/NAME-named/data/eval.jsonl --n_vie 240 \
        --seed S --n_caption 0 --n_vqa 0 --n_qa 0 --output_dir runs/NAME-named/eval-reprompt

"add a second ring just like it" becomes "add a second ring just like it, double". Pre-training finds a concept's
name among other words (corpora run27, run28), so a named instruction takes the recall step out of the question: what
the adapters then get wrong is what they do after the recall. The copy holds `data/` (the evaluation items named, the
training items as they were), the evaluation pairs of `eval-evaluator/pairs/` (the same images, the instructions
named) and links to the run's `rlvr/` and `rlmt/`; the source folder is only read.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from seer.data.pairs import PAIRS_FILE
from seer.data.vie import load_vie


def named(instruction: str, concepts: list[str]) -> str:
    """`instruction` followed by the names of the concepts it asks for."""
    return ", ".join([instruction, *concepts])


def rewrite_jsonl(source: Path, target: Path, concepts_of: dict[str, list[str]], id_key: str) -> None:
    """Copy a JSONL file of items or pairs with each record's instruction named (its item found by `id_key`)."""
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    for record in records:
        record["instruction"] = named(record["instruction"], concepts_of[record[id_key]])
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def copy_named(run: Path, out: Path) -> None:
    """Write the named copy of `run` into `out` (which must not exist)."""
    out.mkdir(parents=True)
    (out / "data").mkdir()
    concepts_of = {item.id: item.concepts for item in load_vie(run / "data" / "eval.jsonl")}
    rewrite_jsonl(run / "data" / "eval.jsonl", out / "data" / "eval.jsonl", concepts_of, "id")
    shutil.copy(run / "data" / "train.jsonl", out / "data" / "train.jsonl")
    pairs = run / "eval-evaluator" / "pairs"
    for pair_set in sorted(pairs.iterdir()) if pairs.is_dir() else []:
        target = out / "eval-evaluator" / "pairs" / pair_set.name
        shutil.copytree(pair_set, target)
        rewrite_jsonl(pair_set / PAIRS_FILE, target / PAIRS_FILE, concepts_of, "item_id")
    for stage in ("rlvr", "rlmt"):
        if (run / stage).is_dir():
            (out / stage).symlink_to((run / stage).resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="A finished `seer run` folder (its data/, eval-evaluator/pairs/, rlvr/, rlmt/).")
    parser.add_argument("out", help="Where the named copy goes (must not exist).")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    if out.exists():
        raise SystemExit(f"{out}: already exists (the copy is written only into a new folder)")
    copy_named(run, out)
    print(f"{out}: the evaluation instructions of {run} with the names of their concepts")


if __name__ == "__main__":
    main()
