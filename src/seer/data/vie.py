"""The VIE dataset file: one Visual Instruction Elaboration item per line of a JSONL file.

    {"id": "vie-train-0001", "category": "palette", "difficulty": "simple", "split": "id",
     "prompt": "a large red circle at the center on a white background", "instruction": "make it look icy",
     "spec": {...}, "gold": "a large cyan circle ...", "concepts": ["icy"]}

`spec` (what a satisfying ShapeWorld image must show) and `gold` (a literal prompt that meets it) are
optional: a user who writes items for a real model leaves them out, and then only the model's own
evaluator can score reprompts, not the oracle. Every command that reads a VIE file goes through
`load_vie`, which stops at the first problem with a one-line `SeerError` naming the file, the line and
the field; `validate_vie` lists every problem for `seer data --validate`. `write_vie` writes atomically,
so an error or a crash never leaves a half-written file. The files are plain JSONL that
`datasets.load_dataset("json", data_files=...)` reads.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import secrets
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer.errors import SeerError

DIFFICULTIES: tuple[str, ...] = ("simple", "hard")
SPLITS: tuple[str, ...] = ("id", "ood")
# How many problems `validate_vie` lists; past this the user fixes the first ones and runs it again.
MAX_REPORTED_ERRORS = 20


@dataclass
class VIEItem:
    """One VIE item: rewrite `prompt` following `instruction` so the frozen generator draws what is meant."""

    id: str
    category: str
    difficulty: str  # "simple" (one constraint) | "hard" (several, or a paradox)
    split: str  # "id" | "ood" (concepts and phrasings never seen in VIE training items)
    prompt: str
    instruction: str
    spec: dict[str, Any] | None = None  # ShapeWorld spec for the oracle; None for a real model's items
    gold: str | None = None  # a literal prompt that satisfies `spec`
    concepts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The item as the JSON object written on its line (all fields, in declaration order)."""
        return dataclasses.asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(VIEItem))
REQUIRED_FIELDS: tuple[str, ...] = ("id", "category", "difficulty", "split", "prompt", "instruction")


def vie_categories() -> tuple[str, ...]:
    """The six VIE categories. Imported here, not at module level, so reading a file needs no world code."""
    from seer.worlds.shapeworld.concepts import CATEGORIES

    return tuple(CATEGORIES)


# ---------------------------------------------------------------------------------------------------------
# Checking one record


def _describe(value: Any) -> str:
    """A short JSON-flavoured description of a value for 'got ...' (users wrote JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return "an empty string" if not value.strip() else repr(text)
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _field_error(where: str, name: str, expected: str, value: Any) -> SeerError:
    return SeerError(f"{where}: field '{name}': expected {expected}, got {_describe(value)}")


def _check_choice(where: str, name: str, value: Any, allowed: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise _field_error(where, name, f"one of {list(allowed)}", value)


def _check_text(where: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _field_error(where, name, "a non-empty string", value)


def item_from_dict(record: dict[str, Any], where: str) -> VIEItem:
    """Check one record against the VIE schema and build the item; `where` prefixes errors ("file:line").

    Raises SeerError at the first problem, naming the field and what was expected.
    """
    # Unknown fields first: a misspelt optional field ("gold_prompt") would otherwise be silently dropped,
    # and a misspelt required one ("promt") is better reported as the typo than as a missing field.
    for name in record:
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SeerError(f"{where}: field '{name}': unknown field{hint}; expected only {list(FIELDS)}")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise SeerError(f"{where}: field '{name}': required field is missing")

    _check_text(where, "id", record["id"])
    _check_choice(where, "category", record["category"], vie_categories())
    _check_choice(where, "difficulty", record["difficulty"], DIFFICULTIES)
    _check_choice(where, "split", record["split"], SPLITS)
    _check_text(where, "prompt", record["prompt"])
    _check_text(where, "instruction", record["instruction"])

    spec = record.get("spec")
    if spec is not None:
        if not isinstance(spec, dict):
            raise _field_error(where, "spec", "an object or null", spec)
        from seer.worlds.shapeworld.spec import validate_spec

        try:
            validate_spec(spec)
        except ValueError as e:
            # validate_spec names the sub-field in its message; keep it on the same single line.
            detail = " ".join(str(e).split())
            raise SeerError(f"{where}: field 'spec': not a valid ShapeWorld spec: {detail}") from None

    gold = record.get("gold")
    if gold is not None:
        _check_text(where, "gold", gold)

    concepts = record.get("concepts", [])
    if not isinstance(concepts, list):
        raise _field_error(where, "concepts", "a list of strings", concepts)
    for i, concept in enumerate(concepts):
        _check_text(where, f"concepts[{i}]", concept)

    return VIEItem(
        id=record["id"],
        category=record["category"],
        difficulty=record["difficulty"],
        split=record["split"],
        prompt=record["prompt"],
        instruction=record["instruction"],
        spec=spec,
        gold=gold,
        concepts=list(concepts),
    )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: plain json.loads keeps the last of two equal keys, silently losing the first."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key '{key}' appears twice in one object")
        out[key] = value
    return out


def _parse_line(raw: bytes, where: str) -> VIEItem:
    """One non-blank line of a VIE file -> item, or SeerError naming the line (and the field, if any)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeerError(
            f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8"
        ) from None
    try:
        record = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise SeerError(f"{where}: invalid JSON ({e.msg} at column {e.colno}); expected one object per line") from None
    except ValueError as e:  # a duplicate key, from the hook above
        raise SeerError(f"{where}: invalid item ({e})") from None
    if not isinstance(record, dict):
        raise SeerError(f"{where}: expected a JSON object {{...}} on each line, got {_describe(record)}")
    return item_from_dict(record, where)


# ---------------------------------------------------------------------------------------------------------
# Reading and validating files


@dataclass
class ValidationReport:
    """Every problem found in a VIE file (the first `MAX_REPORTED_ERRORS` messages) and the items that parsed."""

    path: Path
    items: list[VIEItem]
    errors: list[str]
    n_errors: int  # all problems, including those past the listed ones

    @property
    def ok(self) -> bool:
        return self.n_errors == 0

    def error_lines(self) -> list[str]:
        """The listed errors, plus one line saying how many were left out."""
        more = self.n_errors - len(self.errors)
        return self.errors + ([f"... and {more} more error(s) in {self.path}"] if more else [])


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise SeerError(f"{path}: no such file; expected a VIE JSONL file")
    if path.is_dir():
        raise SeerError(f"{path}: is a directory; expected a VIE JSONL file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise SeerError(f"{path}: cannot read the file ({e.strerror})") from None


def _scan(path: Path, max_errors: int, stop_at_first: bool) -> ValidationReport:
    """Check every line of a VIE file; shared by load_vie (stops at the first error) and validate_vie."""
    report = ValidationReport(path=path, items=[], errors=[], n_errors=0)

    def record(error: SeerError) -> None:
        report.n_errors += 1
        if len(report.errors) < max_errors:
            report.errors.append(str(error))

    try:
        data = _read_bytes(path)
    except SeerError as e:
        record(e)
        return report
    # Split on b"\n" only: str.splitlines would also break at U+2028 and friends, which JSON strings may hold.
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    first_line_of_id: dict[str, int] = {}
    n_nonblank = 0
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():  # blank lines (and a trailing newline) are allowed
            continue
        n_nonblank += 1
        where = f"{path}:{lineno}"
        try:
            item = _parse_line(raw, where)
            if item.id in first_line_of_id:
                raise SeerError(
                    f"{where}: field 'id': expected a unique id, got {item.id!r} again "
                    f"(first used on line {first_line_of_id[item.id]})"
                )
        except SeerError as e:
            record(e)
            if stop_at_first:
                return report
            continue
        first_line_of_id[item.id] = lineno
        report.items.append(item)
    if n_nonblank == 0:
        what = "an empty file" if not data else "only blank lines"
        record(SeerError(f"{path}: no items; expected one JSON object per line, got {what}"))
    return report


def load_vie(path: str | os.PathLike) -> list[VIEItem]:
    """Read and check a VIE JSONL file. Raises SeerError (one line: file, line, field) at the first problem."""
    report = _scan(Path(path), max_errors=1, stop_at_first=True)
    if not report.ok:
        raise SeerError(report.errors[0])
    return report.items


def validate_vie(path: str | os.PathLike, max_errors: int = MAX_REPORTED_ERRORS) -> ValidationReport:
    """Check every line of a VIE file and report all problems (the first `max_errors` spelled out)."""
    return _scan(Path(path), max_errors=max_errors, stop_at_first=False)


# ---------------------------------------------------------------------------------------------------------
# Writing


def dumps_vie(items: Sequence[VIEItem]) -> str:
    """The JSONL text of `items`: one object per line, fields in declaration order, newline-terminated."""
    return "".join(json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in items)


def check_items(items: Sequence[VIEItem], where: str) -> None:
    """Check in-memory items as load_vie checks file lines (schema and unique ids); raises SeerError."""
    first_index_of_id: dict[str, int] = {}
    for i, item in enumerate(items):
        item_where = f"{where}: item {i}"
        item_from_dict(item.to_dict(), item_where)
        if item.id in first_index_of_id:
            raise SeerError(
                f"{item_where}: field 'id': expected a unique id, got {item.id!r} again "
                f"(first used by item {first_index_of_id[item.id]})"
            )
        first_index_of_id[item.id] = i


@contextmanager
def staged_path(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target`; on success it replaces `target`, on error it is removed.

    The temporary file lives in the same directory so that `os.replace` is an atomic rename: readers see
    the old file or the complete new one, never a partial one.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # already gone after a successful replace


def write_text_synced(path: Path, text: str) -> None:
    """Create `path` (it must not exist) with `text` and flush it to disk before returning."""
    with open(path, "x", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_vie(items: Sequence[VIEItem], path: str | os.PathLike) -> Path:
    """Check `items` and write them as a VIE JSONL file, atomically. Returns the path written."""
    path = Path(path)
    check_items(items, str(path))
    if not items:
        raise SeerError(f"{path}: no items to write; a VIE file needs at least one item")
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_path(path) as tmp:
        write_text_synced(tmp, dumps_vie(items))
    return path


# ---------------------------------------------------------------------------------------------------------
# Summary


def summary_table(items: Sequence[VIEItem]) -> str:
    """Counts by category (rows) x difficulty/split (columns), with row and column totals, as aligned text."""
    columns = [(d, s) for s in SPLITS for d in DIFFICULTIES]
    counts = Counter((it.category, it.difficulty, it.split) for it in items)
    known = vie_categories()
    categories = list(known) + sorted({it.category for it in items} - set(known))

    header = ["category"] + [f"{d}/{s}" for d, s in columns] + ["total"]
    rows = []
    for category in categories:
        cells = [counts[(category, d, s)] for d, s in columns]
        rows.append([category] + cells + [sum(cells)])
    totals = [sum(row[1 + j] for row in rows) for j in range(len(columns))]
    rows.append(["total"] + totals + [sum(totals)])

    width0 = max(len(str(r[0])) for r in [header] + rows)
    widths = [max(len(str(r[j])) for r in [header] + rows) for j in range(1, len(header))]

    def fmt(row: list[Any]) -> str:
        return "  ".join([str(row[0]).ljust(width0)] + [str(v).rjust(w) for v, w in zip(row[1:], widths)])

    return "\n".join(fmt(r) for r in [header] + rows)
