"""`seer data`: build the ShapeWorld VIE training and evaluation sets, or check a VIE file.

    seer data --out data/vie                 # writes data/vie/train.jsonl and data/vie/eval.jsonl
    seer data --validate my_items.jsonl      # lists every problem in a VIE file, or its summary

The training set is the paper's size: 50 items per category (25 simple + 25 hard, in-distribution). The
evaluation set comes from a different seed derived from `--seed`, holds both difficulties and both splits
(`ood`: concepts and phrasings never used in training items), and shares no (prompt, instruction) pair
with the training set, so evaluation never scores an item the policy was trained on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer.config import save_config
from seer.data.vie import (
    DIFFICULTIES,
    SPLITS,
    VIEItem,
    check_items,
    dumps_vie,
    item_from_dict,
    load_vie,
    staged_path,
    summary_table,
    validate_vie,
    write_text_synced,
)
from seer.errors import SeerError

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
# Candidate evaluation items generated per needed item, tried in turn until every cell is filled.
EVAL_SURPLUS_FACTORS = (2, 4, 8)


@dataclass
class DataArgs:
    """Arguments of `seer data`."""

    out: str | None = field(
        default=None, metadata={"help": "Output directory for train.jsonl and eval.jsonl (build mode)."}
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the training set; the evaluation seed is derived from it."}
    )
    validate: str | None = field(
        default=None, metadata={"help": "A VIE JSONL file to check instead of building (lists every problem)."}
    )
    n_train_per_cell: int = field(
        default=25, metadata={"help": "Training items per (category, difficulty) cell; 25 gives the paper's 300."}
    )
    n_eval_per_cell: int = field(
        default=25, metadata={"help": "Evaluation items per (category, difficulty, split) cell; 25 gives 600."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace train.jsonl/eval.jsonl if they exist."})


ARG_TYPES = (DataArgs,)


def derive_eval_seed(seed: int) -> int:
    """A seed for the evaluation set that differs from `seed` and from `seed + k` for small k.

    A hash rather than `seed + offset`, so that the evaluation set of one run is never the training set
    of another run whose seed happens to be `seed + offset`.
    """
    digest = hashlib.sha256(f"seer-vie-eval:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _pair(item: VIEItem) -> tuple[str, str]:
    return (item.prompt, item.instruction)


def _cell(item: VIEItem) -> tuple[str, str, str]:
    return (item.category, item.difficulty, item.split)


def _to_items(records: list[dict[str, Any]], name: str) -> list[VIEItem]:
    """Generated dicts -> checked items; a generator bug is reported like a bad file line."""
    return [item_from_dict(r, f"generated {name} item {i} (id {r.get('id')!r})") for i, r in enumerate(records)]


def select_eval_items(
    candidates: list[VIEItem], train: list[VIEItem], n_per_cell: int
) -> tuple[list[VIEItem], dict[tuple[str, str, str], int]]:
    """The first `n_per_cell` candidates of each (category, difficulty, split) cell whose (prompt, instruction)
    is in neither train nor an earlier selected item, in candidate order; also how many each cell got."""
    seen = {_pair(it) for it in train}
    kept: dict[tuple[str, str, str], int] = defaultdict(int)
    selected = []
    for item in candidates:
        if kept[_cell(item)] >= n_per_cell or _pair(item) in seen:
            continue
        seen.add(_pair(item))
        kept[_cell(item)] += 1
        selected.append(item)
    return selected, kept


def generate_sets(seed: int, n_train_per_cell: int, n_eval_per_cell: int) -> tuple[list[VIEItem], list[VIEItem]]:
    """The training and evaluation items (in memory; nothing written)."""
    from seer.worlds.shapeworld.concepts import CATEGORIES
    from seer.worlds.shapeworld.items import generate_items

    train = _to_items(generate_items(seed, n_train_per_cell, splits=("id",), id_prefix="vie-train"), "train")
    cells = [(c, d, s) for c in CATEGORIES for d in DIFFICULTIES for s in SPLITS]
    eval_seed = derive_eval_seed(seed)
    # Generate more candidates than needed, so that dropping those that repeat a training pair (or each
    # other) still fills every cell; grow the surplus only if a cell comes up short. Deterministic in `seed`.
    for factor in EVAL_SURPLUS_FACTORS:
        records = generate_items(eval_seed, factor * n_eval_per_cell, splits=SPLITS, id_prefix="vie-eval")
        selected, kept = select_eval_items(_to_items(records, "eval"), train, n_eval_per_cell)
        short = [cell for cell in cells if kept[cell] < n_eval_per_cell]
        if not short:
            return train, selected
    cell = short[0]
    raise SeerError(
        f"field 'n_eval_per_cell': expected at most {kept[cell]} for cell {'/'.join(cell)} "
        f"(the distinct items the world has that are not in the training set), got {n_eval_per_cell}"
    )


def build_vie_sets(
    out_dir: str | os.PathLike,
    seed: int = 0,
    n_train_per_cell: int = 25,
    n_eval_per_cell: int = 25,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write out_dir/train.jsonl and out_dir/eval.jsonl; returns {"train": n, "eval": m}.

    Both files are written to temporary names, read back with `load_vie`, and only then renamed into
    place, so a failure anywhere leaves no partial output (and leaves existing files untouched).
    """
    for name, value in (("n_train_per_cell", n_train_per_cell), ("n_eval_per_cell", n_eval_per_cell)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SeerError(f"field '{name}': expected an integer >= 1, got {value!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SeerError(f"{out}: expected an output directory, got an existing file")
    targets = {"train": out / TRAIN_FILE, "eval": out / EVAL_FILE}
    if not overwrite:
        for target in targets.values():
            if target.exists():
                raise SeerError(f"{target}: already exists; expected a new path (pass --overwrite to replace it)")

    train, eval_items = generate_sets(seed, n_train_per_cell, n_eval_per_cell)
    sets = {"train": train, "eval": eval_items}
    for name, items in sets.items():
        check_items(items, str(targets[name]))

    out.mkdir(parents=True, exist_ok=True)
    with staged_path(targets["train"]) as train_tmp, staged_path(targets["eval"]) as eval_tmp:
        for name, tmp in (("train", train_tmp), ("eval", eval_tmp)):
            write_text_synced(tmp, dumps_vie(sets[name]))
            # Read back through the one loader every command uses: what we ship is what they will read.
            if load_vie(tmp) != sets[name]:
                raise RuntimeError(f"{tmp}: items read back differ from the items written (a bug in seer.data)")
    return {name: len(items) for name, items in sets.items()}


def main(args: DataArgs) -> int:
    """Run `seer data`: validate a file (exit 0 if it is clean, 1 if not) or build both sets (exit 0)."""
    if (args.out is None) == (args.validate is None):
        given = "both" if args.out is not None else "neither"
        raise SeerError(
            f"seer data: expected exactly one of --out DIR (build) or --validate FILE (check), got {given}"
        )

    if args.validate is not None:
        report = validate_vie(args.validate)
        if not report.ok:
            print("\n".join(report.error_lines()))
            return 1
        print(f"{report.path}: {len(report.items)} items, no problems")
        print(summary_table(report.items))
        return 0

    start = time.perf_counter()
    counts = build_vie_sets(
        args.out,
        seed=args.seed,
        n_train_per_cell=args.n_train_per_cell,
        n_eval_per_cell=args.n_eval_per_cell,
        overwrite=args.overwrite,
    )
    # The resolved config beside the outputs: `seer data --config DIR/config.yaml` rebuilds the same files.
    save_config(args.out, args)
    for name, file_name in (("train", TRAIN_FILE), ("eval", EVAL_FILE)):
        path = Path(args.out) / file_name
        print(f"\n{path}: {counts[name]} items")
        print(summary_table(load_vie(path)))
    print(f"\nbuilt in {time.perf_counter() - start:.1f} s")
    return 0
