"""What the reprompter recalls before it rewrites, read from finished `seer run`s (no model is loaded).

    python benchmarks/reprompt_recalls.py runs/shapeworld-tiny [RUN_DIR ...] [--out recalls.json]

A reprompt's think states the definitions of the concepts it will apply ("icy means white , cyan and blue . a row
means ..."). For every evaluation item of each run's `eval-reprompt/results.json`, and for SEER's and the base
model's (zero-shot) reprompt, the think's sentences are matched to concept definitions
(`seer.worlds.shapeworld.checklist.recalled_names`) and compared with the item's concepts (the run's
`data/eval.jsonl`). Reported per system and difficulty: the share of thinks that recall every asked concept, the
share that recall a concept the item does not ask for (a stray recall), and the oracle pass rate within each group.
A hard item asks two things; a reprompt that recalls only one of them rarely passes (RESULTS, runs 30 and 31).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
from pathlib import Path

from seer.data.vie import load_vie
from seer.worlds.shapeworld.checklist import recalled_names

SYSTEMS = ("seer", "zero_shot")


def recalled(raw: str) -> set[str]:
    """The concept names whose definitions the answer's think states, one per sentence (" . " separated)."""
    return set(recalled_names(raw))


def recall_profile(raw: str, asked: list[str]) -> tuple[bool, bool]:
    """(every asked concept recalled, some concept recalled that is not asked) for one reprompt."""
    names = recalled(raw)
    return set(asked) <= names, bool(names - set(asked))


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def profile_run(run_dir: Path) -> dict:
    """Per system and difficulty: n, recall shares, and pass rates given each recall outcome."""
    items = {item.id: item for item in load_vie(run_dir / "data" / "eval.jsonl")}
    records = json.loads((run_dir / "eval-reprompt" / "results.json").read_text())["records"]
    out: dict = {}
    for system in SYSTEMS:
        rows = collections.defaultdict(list)  # difficulty -> [(all asked, stray, passed)]
        for record in records:
            answer = record[system]
            rows[record["difficulty"]].append((*recall_profile(answer["raw"], items[record["id"]].concepts),
                                               bool(answer["passed"])))  # fmt: skip
        out[system] = {
            difficulty: {
                "n": len(r),
                "recalls_every_asked": _share([a for a, _, _ in r]),
                "stray_recall": _share([s for _, s, _ in r]),
                "pass_if_every_asked": _share([p for a, _, p in r if a]),
                "pass_otherwise": _share([p for a, _, p in r if not a]),
                "pass_if_stray": _share([p for _, s, p in r if s]),
            }
            for difficulty, r in sorted(rows.items())
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="`seer run` output directories (with data/ and eval-reprompt/).")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here.")
    args = parser.parse_args()
    figures = {"date": datetime.date.today().isoformat(), "runs": {}}
    print("| run | system | difficulty | n | recalls every asked | stray recall "
          "| pass: every asked / otherwise / stray |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        figures["runs"][run] = profile_run(Path(run))
        for system, by in figures["runs"][run].items():
            for difficulty, f in by.items():
                print(f"| {Path(run).name} | {system} | {difficulty} | {f['n']} | {f['recalls_every_asked']} | "
                      f"{f['stray_recall']} | {f['pass_if_every_asked']} / {f['pass_otherwise']} / "
                      f"{f['pass_if_stray']} |")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
