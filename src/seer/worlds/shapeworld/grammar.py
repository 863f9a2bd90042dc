"""The literal prompt grammar of ShapeWorld: scene -> text (`describe`) and text -> scene (`parse`).

The grammar (every word is lower case; `describe` writes exactly this form):

    prompt     := objects " on a " COLOR " background"
    objects    := object | object (", " object)* " and " object      (1-4 objects)
    object     := "a " SIZE " " COLOR " " SHAPE " at the " POSITION

for example "a large red circle at the top left, a small blue square at the center and a small green ring at
the bottom on a white background". SIZE, COLOR, SHAPE and POSITION are the names in `scene.py` (positions are
"top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right").
`describe` lists the objects in canonical (cell) order; no article is ever "an", since a size word always
follows it.

`parse` is strict because it reads a model's reprompts for rewards and must never accept garbage. It accepts
exactly this grammar, with objects in any order, and forgives only what carries no meaning:
- upper/lower case (the text is lower-cased first);
- whitespace: leading/trailing space, runs of spaces/tabs/newlines, and space before a comma ("x , y").
Everything else is an error (`GrammarError`): unknown or missing words, words after "background" (a final
period included), "and" where a comma belongs or the reverse, no background, more than four objects, two
objects in one cell, an object coloured like the background.
"""

from __future__ import annotations

from seer.errors import SeerError
from seer.worlds.shapeworld.scene import COLORS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES, Obj, Scene


class GrammarError(SeerError, ValueError):
    """Text that is not a literal ShapeWorld prompt; the message says which word is wrong and what was expected.

    A `SeerError` (a data file with a bad prompt is bad user input) and a `ValueError` (bad value for `parse`).
    """


def describe_object(obj: Obj) -> str:
    """One object as the grammar says it, e.g. "a large red circle at the top left"."""
    return f"a {obj.size} {obj.color} {obj.shape} at the {obj.pos}"


def describe(scene: Scene) -> str:
    """The scene's literal prompt, objects in canonical (cell) order."""
    parts = [describe_object(o) for o in scene.objects]
    objects = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{objects} on a {scene.background} background"


def _tokens(text: str) -> list[str]:
    # A comma is its own token, so "x, y" and "x , y" read the same; other punctuation stays glued to its word
    # and is then rejected as an unknown word.
    return text.lower().replace(",", " , ").split()


class _Reader:
    """A cursor over the tokens of one prompt; every `expect_*` raises `GrammarError` naming the word."""

    def __init__(self, text: str) -> None:
        self.words = _tokens(text)
        self.i = 0

    def where(self) -> str:
        if self.i >= len(self.words):
            return "at the end of the text"
        return f"at word {self.i + 1} ({self.words[self.i]!r})"

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def expect(self, what: str, allowed: tuple[str, ...] | list[str]) -> str:
        word = self.peek()
        if word not in allowed:
            raise GrammarError(f"{self.where()}: expected {what} ({', '.join(repr(a) for a in allowed)})")
        self.i += 1
        return word

    def expect_position(self) -> str:
        # Two-word positions first: "top left" must not be read as "top" followed by a stray "left".
        two = " ".join(self.words[self.i : self.i + 2])
        if two in POSITIONS:
            self.i += 2
            return two
        return self.expect("a position", POSITIONS)

    def object(self) -> Obj:
        self.expect("an object starting with", ("a",))
        size = self.expect("a size", SIZES)
        color = self.expect("a colour", list(COLORS))
        shape = self.expect("a shape", SHAPES)
        self.expect("'at the' after the shape", ("at",))
        self.expect("'the' after 'at'", ("the",))
        return Obj(self.expect_position(), shape, color, size)


def parse(text: str) -> Scene:
    """The scene a literal prompt describes; raises `GrammarError` for anything outside the grammar."""
    reader = _Reader(text)
    objects = [reader.object()]
    separators: list[str] = []
    while (sep := reader.expect("',', 'and' or 'on a ... background'", (",", "and", "on"))) != "on":
        separators.append(sep)
        if len(objects) == MAX_OBJECTS:
            raise GrammarError(f"more than {MAX_OBJECTS} objects (a scene has 1-{MAX_OBJECTS})")
        objects.append(reader.object())
    expected = [","] * (len(objects) - 2) + ["and"] if len(objects) > 1 else []
    if separators != expected:
        raise GrammarError(
            f"{len(objects)} objects must be joined as {_join_form(len(objects))}, got {' / '.join(separators)}"
        )
    reader.expect("'a' before the background colour", ("a",))
    background = reader.expect("a background colour", list(COLORS))
    reader.expect("the word 'background'", ("background",))
    if reader.peek() is not None:
        raise GrammarError(f"{reader.where()}: expected the end of the text after 'background'")
    return _scene(background, objects)


def _join_form(n: int) -> str:
    return "'x and y'" if n == 2 else "'x, y and z' (commas, then 'and' before the last)"


def _scene(background: str, objects: list[Obj]) -> Scene:
    # Scene validates too, but its messages are ValueErrors about fields; say it in the grammar's words.
    cells = [o.pos for o in objects]
    for pos in dict.fromkeys(cells):
        if cells.count(pos) > 1:
            raise GrammarError(f"two objects at the {pos}; each cell holds at most one object")
    for o in objects:
        if o.color == background:
            raise GrammarError(f"the {o.shape} at the {o.pos} is {o.color} like the background, so it is invisible")
    return Scene(background, tuple(objects))


def try_parse(text: str) -> Scene | None:
    """`parse(text)`, or None when the text is not a literal prompt."""
    try:
        return parse(text)
    except GrammarError:
        return None
