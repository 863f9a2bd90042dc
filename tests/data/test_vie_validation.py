"""The VIE file format: every malformed-file case gives one line naming the file, line and field; round trips;
atomic writes; datasets reads what we write."""

import json
import os

import pytest

from seer.data.vie import VIEItem, load_vie, summary_table, validate_vie, write_vie
from seer.errors import SeerError

# A valid item for a real model: no spec, no gold (no oracle), which the schema allows.
VALID = {
    "id": "u1",
    "category": "palette",
    "difficulty": "simple",
    "split": "id",
    "prompt": "a large red circle at the center on a white background",
    "instruction": "make it look icy",
}
# "icy": the background must be white, cyan or blue; nothing of the prompt is required to be kept.
ICY = {"concept": "icy", "kind": "background", "shapes": [], "colors": ["white", "cyan", "blue"], "sizes": []}
ICY |= {"positions": [], "lines": [], "axis": "", "min": 0, "max": 0}
SPEC = {"constraints": [ICY], "keep": []}
# "icy" is a concept, not a colour name: validate_spec must reject it and name the sub-field
BAD_SPEC = {"constraints": [{**ICY, "colors": ["icy"]}], "keep": []}
BAD_SPEC_SUBFIELD = "spec.constraints[0].colors"
DROP = object()


def line(**changes) -> bytes:
    """One JSON line: VALID with fields changed (or removed, with DROP)."""
    record = {**VALID, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not DROP}).encode()


def good(i: int) -> bytes:
    return line(id=f"g{i}")


# name, file content (bytes), line named in the error (None: file-level), field named (None: none), fragment
CASES = [
    ("non-UTF-8 bytes", good(1) + b"\n" + b'{"id": "caf\xe9"}', 2, None, "not valid UTF-8"),
    ("invalid JSON", good(1) + b"\n" + good(2) + b"\n" + b'{"id": "x",}', 3, None, "invalid JSON"),
    ("JSON list, not an object", b'["u1", "palette"]', 1, None, "expected a JSON object"),
    ("JSON string, not an object", good(1) + b'\n"just text"', 2, None, "expected a JSON object"),
    ("missing required field", line(prompt=DROP), 1, "prompt", "required field is missing"),
    ("missing id", good(1) + b"\n" + line(id=DROP), 2, "id", "required field is missing"),
    ("prompt is a number", line(prompt=3), 1, "prompt", "expected a non-empty string, got the number 3"),
    ("concepts is a string", line(concepts="icy"), 1, "concepts", "expected a list of strings"),
    ("concepts holds a number", line(concepts=["icy", 7]), 1, "concepts[1]", "expected a non-empty string"),
    ("gold is a list", line(gold=["x"]), 1, "gold", "expected a non-empty string, got a list"),
    ("spec is a string", line(spec="icy"), 1, "spec", "expected an object or null"),
    ("unknown category", line(category="colour"), 1, "category", "expected one of ['palette'"),
    ("unknown difficulty", line(difficulty="medium"), 1, "difficulty", "expected one of ['simple', 'hard']"),
    ("unknown split", line(split="test"), 1, "split", "expected one of ['id', 'ood']"),
    ("split wrongly typed", line(split=True), 1, "split", "got true"),
    ("empty prompt", line(prompt=""), 1, "prompt", "got an empty string"),
    ("blank instruction", line(instruction="   "), 1, "instruction", "got an empty string"),
    ("unknown field (typo)", line(promt="x"), 1, "promt", "did you mean 'prompt'"),
    ("unknown field", line(extra=1), 1, "extra", "unknown field"),
    ("key given twice", b'{"id": "a", "id": "b"}', 1, None, "key 'id' appears twice"),
    ("unparseable spec", line(spec=BAD_SPEC), 1, "spec", BAD_SPEC_SUBFIELD),
    ("duplicate id", good(1) + b"\n" + good(2) + b"\n\n" + good(1), 4, "id", "first used on line 1"),
    ("empty file", b"", None, None, "got an empty file"),
    ("only blank lines", b"\n  \n\n", None, None, "got only blank lines"),
]


@pytest.mark.parametrize("content, lineno, field, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_file_names_file_line_and_field(tmp_path, content, lineno, field, fragment):
    path = tmp_path / "items.jsonl"
    path.write_bytes(content)
    with pytest.raises(SeerError) as exc:
        load_vie(path)
    msg = str(exc.value)
    assert "\n" not in msg
    prefix = f"{path}:{lineno}: " if lineno is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    if field is not None:
        assert msg.startswith(f"{prefix}field '{field}': "), msg
    assert fragment in msg, msg
    # validate_vie reports the very same problem
    report = validate_vie(path)
    assert not report.ok and report.errors[0] == msg


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(SeerError, match=rf"^{path}: no such file"):
        load_vie(path)


def test_path_is_a_directory(tmp_path):
    with pytest.raises(SeerError, match=rf"^{tmp_path}: is a directory"):
        load_vie(tmp_path)


def test_non_utf8_names_byte_and_column(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"id": "caf\xe9"}')
    with pytest.raises(SeerError, match=r":1: not valid UTF-8 \(byte 0xe9 at column 12\)"):
        load_vie(path)


def test_blank_lines_and_crlf_are_allowed(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\n" + good(1) + b"\r\n\n   \n" + good(2) + b"\n\n")
    items = load_vie(path)
    assert [it.id for it in items] == ["g1", "g2"]
    # optional fields take their defaults when absent
    assert items[0].spec is None and items[0].gold is None and items[0].concepts == []


def test_optional_fields_are_read(tmp_path):
    path = tmp_path / "items.jsonl"
    gold = "a large white circle at the center on a black background"
    path.write_bytes(line(spec=SPEC, gold=gold, concepts=["icy"]))
    (item,) = load_vie(path)
    assert item == VIEItem(**VALID, spec=SPEC, gold=gold, concepts=["icy"])


def test_validate_lists_every_error_with_its_line(tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [good(1), line(id="b", split="x"), good(3), b"not json", line(id="c", category=1), good(1)]
    path.write_bytes(b"\n".join(lines))
    report = validate_vie(path)
    assert report.n_errors == 4
    assert [e.split(": ")[0] for e in report.errors] == [f"{path}:{n}" for n in (2, 4, 5, 6)]
    assert [it.id for it in report.items] == ["g1", "g3"]


def test_validate_caps_listed_errors_but_counts_all(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\n".join(line(id=f"x{i}", split="bad") for i in range(25)))
    report = validate_vie(path, max_errors=20)
    assert report.n_errors == 25 and len(report.errors) == 20
    assert report.error_lines()[-1] == f"... and 5 more error(s) in {path}"


def _items() -> list[VIEItem]:
    return [
        VIEItem(**{**VALID, "id": "a"}),
        VIEItem(**{**VALID, "id": "b", "difficulty": "hard", "split": "ood", "concepts": ["icy", "warm"]}),
        # non-ASCII and U+2028 inside a string must survive: JSONL splits on "\n" only
        VIEItem(**{**VALID, "id": "c", "instruction": "rends-le glacé\u2028vraiment", "spec": SPEC, "gold": "x"}),
    ]


def test_write_then_load_round_trips(tmp_path):
    items = _items()
    path = write_vie(items, tmp_path / "sub" / "items.jsonl")
    assert load_vie(path) == items
    assert path.read_bytes().count(b"\n") == len(items)


def test_write_refuses_invalid_items_and_leaves_existing_file_intact(tmp_path):
    path = tmp_path / "items.jsonl"
    write_vie(_items(), path)
    before = path.read_bytes()
    bad = _items() + [VIEItem(**{**VALID, "id": "d", "category": "colour"})]
    with pytest.raises(SeerError, match=r"item 3: field 'category'"):
        write_vie(bad, path)
    dup = _items() + [VIEItem(**{**VALID, "id": "a"})]
    with pytest.raises(SeerError, match=r"item 3: field 'id': .* \(first used by item 0\)"):
        write_vie(dup, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["items.jsonl"]


def test_write_crash_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "items.jsonl"
    write_vie(_items()[:1], path)
    before = path.read_bytes()

    def crash(fd):  # the data has gone to the temp file, the disk flush fails
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        write_vie(_items(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["items.jsonl"]


def test_datasets_reads_the_written_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    items = _items()
    path = write_vie(items, tmp_path / "items.jsonl")
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 3
    assert ds["id"] == ["a", "b", "c"]
    assert ds["instruction"] == [it.instruction for it in items]
    assert ds["concepts"] == [[], ["icy", "warm"], []]
    assert ds["spec"] == [None, None, SPEC]


def test_summary_table_counts_hand_derived():
    def item(i, category, difficulty, split):
        return VIEItem(**{**VALID, "id": str(i), "category": category, "difficulty": difficulty, "split": split})

    items = [item(0, "palette", "simple", "id"), item(1, "palette", "simple", "id"), item(2, "palette", "hard", "ood")]
    items += [item(3, "quantity", "hard", "id"), item(4, "quantity", "simple", "ood")]
    items += [item(5, "quantity", "hard", "id")]
    rows = {r.split()[0]: r.split()[1:] for r in summary_table(items).splitlines()}
    assert rows["category"] == ["simple/id", "hard/id", "simple/ood", "hard/ood", "total"]
    assert rows["palette"] == ["2", "0", "0", "1", "3"]
    assert rows["quantity"] == ["0", "2", "1", "0", "3"]
    assert rows["atmosphere"] == ["0", "0", "0", "0", "0"]
    assert rows["total"] == ["2", "2", "1", "1", "6"]
    assert len(rows) == 1 + 6 + 1  # header, the six categories, totals
