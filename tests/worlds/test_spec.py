"""The spec language: hand-built scenes against hand-derived verdicts, and validation messages."""

import json

import pytest

from seer.worlds.shapeworld.scene import Obj, Scene
from seer.worlds.shapeworld.spec import FIELDS, KINDS, check, constraint, make_spec, validate_spec, violation


def scene(background, *objects):
    return Scene(background, tuple(Obj(*o) for o in objects))


def holds(s, c):
    return violation(s, c) is None


# A red small circle at the top left, a blue large square at the center, a red small circle at the bottom right.
S = scene("white", ("top left", "circle", "red", "small"), ("center", "square", "blue", "large"),
          ("bottom right", "circle", "red", "small"))  # fmt: skip


def test_constraint_record_has_every_field_with_empty_defaults():
    c = constraint("count", "double", shapes=("circle",), min=2, max=2)
    assert list(c) == list(FIELDS)
    assert c["shapes"] == ["circle"] and c["colors"] == [] and c["axis"] == "" and c["concept"] == "double"
    with pytest.raises(TypeError):
        constraint("count", colours=["red"])


def test_background():
    assert holds(S, constraint("background", colors=["white", "cyan"]))
    assert not holds(S, constraint("background", colors=["black"]))


def test_all_filters_every_object():
    assert holds(S, constraint("all", colors=["red", "blue"]))
    assert not holds(S, constraint("all", colors=["red"]))  # the blue square
    assert holds(S, constraint("all", shapes=["circle", "square"], sizes=["small", "large"]))
    assert not holds(S, constraint("all", positions=["top left", "center"]))  # the circle at the bottom right


def test_count_bounds_are_inclusive():
    red_circles = dict(shapes=["circle"], colors=["red"])
    assert holds(S, constraint("count", **red_circles, min=2, max=2))
    assert not holds(S, constraint("count", **red_circles, min=3, max=4))
    assert not holds(S, constraint("count", **red_circles, min=0, max=1))
    assert holds(S, constraint("count", min=3, max=3))  # empty filter: all objects
    assert holds(S, constraint("count", shapes=["ring"], min=0, max=0))
    assert holds(S, constraint("count", sizes=["large"], positions=["center"], min=1, max=1))


def test_only_allows_listed_looks_with_wildcards():
    assert holds(S, constraint("only", shapes=["circle", "square"], colors=["red", "blue"], sizes=["small", ""]))
    assert not holds(S, constraint("only", shapes=["circle"], colors=["red"], sizes=["small"]))  # the square
    assert not holds(S, constraint("only", shapes=["circle", "square"], colors=["red", "red"], sizes=["", ""]))


def test_stack_vertical_and_horizontal():
    light = scene("black", ("top right", "circle", "red", "small"), ("right", "circle", "yellow", "large"),
                  ("bottom right", "circle", "green", "small"))  # fmt: skip
    parts = dict(shapes=["circle"] * 3, colors=["red", "yellow", "green"], sizes=["", "", ""])
    assert holds(light, constraint("stack", **parts, axis="vertical"))
    assert not holds(light, constraint("stack", **parts, axis="horizontal"))
    wrong_order = dict(parts, colors=["green", "yellow", "red"])
    assert not holds(light, constraint("stack", **wrong_order, axis="vertical"))
    # A two-part stack may start in any row where it fits; sizes are checked when given.
    two = dict(shapes=["circle", "circle"], colors=["yellow", "green"])
    assert holds(light, constraint("stack", **two, sizes=["large", "small"], axis="vertical"))
    assert not holds(light, constraint("stack", **two, sizes=["small", "small"], axis="vertical"))
    row = scene("white", ("left", "bar", "red", "small"), ("center", "bar", "red", "small"))
    bars = dict(shapes=["bar", "bar"], sizes=["", ""])
    assert holds(row, constraint("stack", **bars, colors=["red", ""], axis="horizontal"))
    assert not holds(row, constraint("stack", **bars, colors=["", ""], axis="vertical"))


def test_symmetric():
    sym = constraint("symmetric")
    assert holds(scene("white", ("left", "ring", "red", "small"), ("right", "ring", "red", "small")), sym)
    assert holds(scene("white", ("top", "ring", "red", "small")), sym)  # the middle column mirrors itself
    assert not holds(scene("white", ("left", "ring", "red", "small")), sym)
    assert not holds(scene("white", ("left", "ring", "red", "small"), ("right", "ring", "red", "large")), sym)
    assert not holds(scene("white", ("top left", "ring", "red", "small"), ("right", "ring", "red", "small")), sym)
    assert not holds(S, sym)  # top left vs bottom right is a diagonal, not a mirror


def test_aligned_needs_one_line_and_enough_objects():
    rows = constraint("aligned", lines=["top row", "middle row", "bottom row"], min=2)
    assert holds(scene("white", ("left", "bar", "red", "small"), ("right", "bar", "blue", "small")), rows)
    assert not holds(scene("white", ("left", "bar", "red", "small")), rows)  # one object is not a row
    assert not holds(scene("white", ("left", "bar", "red", "small"), ("top", "bar", "blue", "small")), rows)
    diagonal = constraint("aligned", lines=["main diagonal", "anti diagonal"], min=2)
    assert holds(S, diagonal)
    corners = constraint("aligned", lines=["corners"], min=1)
    assert not holds(S, corners)
    assert holds(scene("white", ("top left", "bar", "red", "small"), ("bottom right", "bar", "red", "small")), corners)


def test_check_separates_constraints_from_keep_and_names_them():
    spec = make_spec(
        [constraint("background", "icy", colors=["white"]), constraint("all", "icy", colors=["blue"])],
        [constraint("count", shapes=["square"], min=1, max=4), constraint("count", min=2, max=2)],
    )
    result = check(S, spec)
    assert (result.satisfied, result.kept, result.passed) == (False, False, False)
    assert len(result.failures) == 2
    assert result.failures[0].startswith("constraints[1] (icy):") and "red circle" in result.failures[0]
    assert result.failures[1].startswith("keep[1]:") and "3 objects" in result.failures[1]
    ok = check(S, make_spec([constraint("background", "icy", colors=["white"])], [constraint("count", min=3, max=3)]))
    assert (ok.satisfied, ok.kept, ok.passed, ok.failures) == (True, True, True, [])


def _full_spec():
    parts = dict(shapes=["circle", "bar"], colors=["red", ""], sizes=["", "small"])
    return make_spec(
        [
            constraint("background", "a", colors=["white"]),
            constraint("all", "a", colors=["red"], positions=["top"]),
            constraint("count", "b", shapes=["circle"], min=1, max=2),
            constraint("stack", "c", **parts, axis="vertical"),
            constraint("symmetric", "d"),
            constraint("aligned", "e", lines=["top row"], min=1),
        ],
        [constraint("only", **parts), constraint("count", min=1, max=1)],
    )


def test_validate_accepts_every_kind_and_json_round_trip_keeps_the_verdict():
    spec = _full_spec()
    assert {c["kind"] for c in spec["constraints"] + spec["keep"]} == set(KINDS)
    validate_spec(spec)
    again = json.loads(json.dumps(spec))
    assert again == spec
    assert check(S, again).failures == check(S, spec).failures


def _broken(path, value):
    spec = _full_spec()
    key, index, name = path
    if name is None:
        spec[key][index] = value
    else:
        spec[key][index][name] = value
    return spec


C = "spec.constraints"


@pytest.mark.parametrize(
    "spec, message",
    [
        (_broken(("constraints", 1, "colors"), ["red", "rouge"]), f"{C}[1].colors: expected a list of colour names"),
        (_broken(("constraints", 1, "colors"), "red"), f"{C}[1].colors: expected a list of colour names"),
        (_broken(("constraints", 2, "shapes"), ["star"]), f"{C}[2].shapes: expected a list of shape names"),
        (_broken(("constraints", 5, "lines"), ["top line"]), f"{C}[5].lines: expected a list of line names"),
        (_broken(("constraints", 0, "kind"), "colour"), f"{C}[0].kind: expected one of"),
        (_broken(("constraints", 2, "min"), 3), f"{C}[2].min: expected 0 <= min <= max <= 4"),
        (_broken(("constraints", 2, "max"), "2"), f"{C}[2].max: expected an integer"),
        (_broken(("constraints", 2, "max"), True), f"{C}[2].max: expected an integer"),
        (_broken(("constraints", 3, "axis"), "diagonal"), f"{C}[3].axis: expected one of"),
        (_broken(("constraints", 3, "sizes"), [""]), f"{C}[3].sizes: expected 2 entries"),
        (_broken(("constraints", 4, "colors"), ["red"]), f"{C}[4].colors: must be empty for kind 'symmetric'"),
        (_broken(("constraints", 0, "colors"), []), f"{C}[0].colors: expected at least one colour name"),
        (_broken(("keep", 1, "colour"), ["red"]), "spec.keep[1].colour: unknown key"),
        (_broken(("keep", 0, None), "only"), "spec.keep[0]: expected an object"),
        ({"constraints": []}, "spec: missing key 'keep'"),
        ({"constraints": [], "keep": []}, "spec.constraints: expected at least one constraint"),
        ({"constraints": {}, "keep": []}, "spec.constraints: expected a list"),
        ([1, 2], "spec: expected an object"),
    ],
)
def test_validate_names_the_offending_sub_field(spec, message):
    with pytest.raises(ValueError) as info:
        validate_spec(spec)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_validate_reports_a_missing_key():
    spec = _full_spec()
    del spec["constraints"][2]["positions"]
    with pytest.raises(ValueError, match=r"^spec\.constraints\[2\]: missing key 'positions'"):
        validate_spec(spec)
