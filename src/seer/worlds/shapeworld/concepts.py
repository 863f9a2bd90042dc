"""The ShapeWorld concept lexicon: the knowledge the UMM learns through understanding and the generator never sees.

Each `Concept` is a checkable constraint on scenes (its `rule`), a category, a split tag ("id" concepts may
appear in VIE training items; "ood" ones only in the out-of-distribution test), at least three instruction
phrasings of its own (templates; "{shape}" is filled with the prompt's subject), and knowledge text: plain
sentences and (question, answer) pairs for the pre-training corpus. All text is lower case with simple
punctuation, because a word-level tokenizer is built from it.

A rule says three things, used by `items.py` (spec and gold elaboration) and `taxonomy.py`:
- `constraints(concept, subject, free)`: the spec constraints of the instruction (see `spec.py`). `free` is the
  set of aspects another concept of the same item changes (a palette frees colour, so "double the circle" then
  asks for two circles, not two red ones).
- `aspects`: what the instruction changes, among ASPECTS.
- what of the prompt must be kept: facets of the subject and of the other objects (None: removed or replaced),
  and the object count afterwards (`total`; None when the constraints or nothing fix it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from seer.worlds.shapeworld.scene import COLORS, SHAPES, Obj, Scene
from seer.worlds.shapeworld.spec import LINES, check, constraint, make_spec

CATEGORIES: tuple[str, ...] = ("palette", "atmosphere", "transformation", "quantity", "composition", "compound")
SPLITS: tuple[str, ...] = ("id", "ood")
# What an instruction can change; two concepts combine in one item only if their aspects are disjoint.
ASPECTS: tuple[str, ...] = ("background", "color", "shape", "size", "pos", "count")
FACETS: frozenset[str] = frozenset({"shape", "color", "size", "pos"})

ICY = ("white", "cyan", "blue")
WARM = ("red", "orange", "yellow")
FIRE = ("red", "orange", "yellow")
BRIGHT = ("yellow", "pink", "cyan", "orange")
ONE_SIDE = ("left column", "right column", "top row", "bottom row")
CORNERS = LINES["corners"]


class Rule(Protocol):
    """What a concept asks of a scene, and what of the prompt it leaves alone."""

    subject_based: ClassVar[bool]  # whether the concept is about one object of the prompt ("the {shape}")
    keep_only: ClassVar[bool]  # whether no new kind of object may appear (the count itself is free)

    @property
    def aspects(self) -> frozenset[str]: ...

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]: ...

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """(facets kept for the subject, facets kept for the other objects); None = removed or replaced."""
        ...

    def total(self, n: int) -> int | None:
        """The object count after the edit of a prompt with n objects; None when the constraints fix it or
        any count will do."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Colours:
    """Background colour from `background`; if `objects` is not empty, every object's colour from it too.

    Palettes set both to one palette, atmospheres only the background, compounds two different sets."""

    background: tuple[str, ...]
    objects: tuple[str, ...] = ()
    subject_based: ClassVar[bool] = False
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"background", "color"} if self.objects else {"background"})

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        out = [constraint("background", concept, colors=self.background)]
        if self.objects:
            out.append(constraint("all", concept, colors=self.objects))
        return out

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        facets = FACETS - self.aspects
        return facets, facets

    def total(self, n: int) -> int | None:
        return n


@dataclass(frozen=True)
class Contrast:
    """Background and every object in `base`, except the subject, which alone takes an `accent` colour."""

    base: tuple[str, ...]
    accent: tuple[str, ...]
    subject_based: ClassVar[bool] = True
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"background", "color"})

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        assert subject is not None
        return [
            constraint("background", concept, colors=self.base),
            constraint("all", concept, colors=self.base + self.accent),
            # Exactly one accent-coloured object, and it has the subject's shape.
            constraint("count", concept, colors=self.accent, min=1, max=1),
            constraint("count", concept, shapes=[subject.shape], colors=self.accent, min=1, max=1),
        ]

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        facets = FACETS - self.aspects
        return facets, facets

    def total(self, n: int) -> int | None:
        return n


@dataclass(frozen=True)
class Part:
    """One object of a composite; size "" means any size (the gold keeps the subject's)."""

    shape: str
    color: str
    size: str = ""


@dataclass(frozen=True)
class Composite:
    """The subject is replaced by `parts` in consecutive cells along `axis` (an object built from shapes)."""

    parts: tuple[Part, ...]
    axis: str = "vertical"
    subject_based: ClassVar[bool] = True
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"shape", "color", "size", "pos", "count"})

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        return [
            constraint(
                "stack",
                concept,
                shapes=[p.shape for p in self.parts],
                colors=[p.color for p in self.parts],
                sizes=[p.size for p in self.parts],
                axis=self.axis,
            )
        ]

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        return None, FACETS

    def total(self, n: int) -> int | None:
        return n - 1 + len(self.parts)


@dataclass(frozen=True)
class Multiply:
    """`count` objects like the subject (same shape and colour; all of `size` if given); side by side if
    `adjacent` (a pair: two identical objects next to each other)."""

    count: int
    adjacent: bool = False
    size: str = ""
    subject_based: ClassVar[bool] = True
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"count", "pos"} | ({"size"} if self.size else set()))

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        assert subject is not None
        color = [] if "color" in free else [subject.color]
        size = [self.size] if self.size else []
        out = [constraint("count", concept, shapes=[subject.shape], colors=color, sizes=size, min=self.count,
                          max=self.count)]  # fmt: skip
        if self.adjacent:
            twin = (subject.shape, color[0] if color else "", self.size or subject.size)
            out.append(constraint("stack", concept, shapes=[twin[0]] * 2, colors=[twin[1]] * 2,
                                  sizes=[twin[2]] * 2, axis="horizontal"))  # fmt: skip
        return out

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        return frozenset({"shape", "color", "size"}) - self.aspects, FACETS

    def total(self, n: int) -> int | None:
        return n - 1 + self.count


@dataclass(frozen=True)
class Solo:
    """Only the subject is left; it becomes `size` (if given) and sits in one of `positions` (if given)."""

    size: str = ""
    positions: tuple[str, ...] = ()
    subject_based: ClassVar[bool] = True
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"count"} | ({"size"} if self.size else set()) | ({"pos"} if self.positions else set()))

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        assert subject is not None
        sizes = [self.size] if self.size else []
        return [
            constraint("count", concept, min=1, max=1),
            constraint("count", concept, shapes=[subject.shape], sizes=sizes, positions=self.positions, min=1, max=1),
        ]

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        return FACETS - self.aspects, None

    def total(self, n: int) -> int | None:
        return None  # the constraints say "exactly one object"


@dataclass(frozen=True)
class Layout:
    """At least `min_objects` objects, all within one of `lines` (objects keep everything but their cell)."""

    lines: tuple[str, ...]
    min_objects: int = 1
    subject_based: ClassVar[bool] = False
    keep_only: ClassVar[bool] = False

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"pos"})

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        return [constraint("aligned", concept, lines=self.lines, min=self.min_objects)]

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        return FACETS - self.aspects, FACETS - self.aspects

    def total(self, n: int) -> int | None:
        return n


@dataclass(frozen=True)
class Symmetric:
    """A left-right mirror image, within one of `lines` if any are given. Objects may be moved or mirrored
    (copied), so the count is free, but no new kind of object may appear (`keep_only`)."""

    lines: tuple[str, ...] = ()
    subject_based: ClassVar[bool] = False
    keep_only: ClassVar[bool] = True

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset({"pos", "count"})

    def constraints(self, concept: str, subject: Obj | None, free: frozenset[str]) -> list[dict[str, Any]]:
        out = [constraint("symmetric", concept)]
        if self.lines:
            out.append(constraint("aligned", concept, lines=self.lines, min=1))
        return out

    def kept_facets(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        return FACETS - self.aspects, FACETS - self.aspects

    def total(self, n: int) -> int | None:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Concepts


@dataclass(frozen=True)
class Concept:
    """One entry of the lexicon."""

    name: str
    category: str
    split: str
    rule: Rule
    phrasings: tuple[str, ...]
    definition: str  # the canonical "x means ..." sentence, the one a policy can reuse in its reasoning
    facts: tuple[str, ...]  # more sentences stating the same knowledge
    qa: tuple[tuple[str, str], ...]
    scene_question: str  # image-grounded yes/no question, e.g. "does this scene look icy?"


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _and(words: tuple[str, ...] | list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _or(words: tuple[str, ...] | list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _palette(name: str, split: str, colors: tuple[str, ...], phrasings: tuple[str, ...]) -> Concept:
    c = _and(colors)
    return Concept(
        name, "palette", split, Colours(colors, colors), phrasings,
        definition=f"{name} means {c}",
        facts=(
            f"{_a(name)} scene uses only {c}",
            f"{c} are {name} colours",
            f"in {_a(name)} picture the background and every shape are {_or(colors)}",
        ),
        qa=(
            (f"what does {name} mean?", f"{name} means {c}"),
            (f"which colours are {name}?", c),
            (f"what colours does {_a(name)} scene use?", f"only {c}"),
        ),
        scene_question=f"does this scene look {name}?",
    )  # fmt: skip


def _atmosphere(name: str, split: str, colors: tuple[str, ...], phrasings: tuple[str, ...]) -> Concept:
    bg = f"{_a(_or(colors))} background"
    return Concept(
        name, "atmosphere", split, Colours(colors), phrasings,
        definition=f"{name} means {bg}",
        facts=(
            f"{_a(name)} scene has {bg}",
            f"the background of {_a(name)} picture is {_or(colors)}",
            f"{bg} feels {name}",
        ),
        qa=(
            (f"what does {name} mean?", f"{name} means {bg}"),
            (f"what background does {_a(name)} scene have?", bg),
        ),
        scene_question=f"does this scene feel {name}?",
    )  # fmt: skip


def _part_text(p: Part) -> str:
    return _a(" ".join(w for w in (p.size, p.color, p.shape) if w))


def _composite(name: str, split: str, parts: tuple[Part, ...], axis: str, phrasings: tuple[str, ...]) -> Concept:
    order = "stacked from top to bottom" if axis == "vertical" else "in a row from left to right"
    made_of = f"{_and([_part_text(p) for p in parts])} {order}"
    return Concept(
        name, "transformation", split, Composite(parts, axis), phrasings,
        definition=f"{_a(name)} is {made_of}",
        facts=(
            f"to draw {_a(name)}, put {made_of}",
            f"{made_of} make {_a(name)}",
        ),
        qa=(
            (f"what is {_a(name)}?", f"{_a(name)} is {made_of}"),
            (f"what is {_a(name)} made of?", made_of),
            (f"how do you draw {_a(name)}?", f"put {made_of}"),
        ),
        scene_question=f"does this scene show {_a(name)}?",
    )  # fmt: skip


def _concept(
    name: str, category: str, split: str, rule: Rule, phrasings: tuple[str, ...], definition: str,
    facts: tuple[str, ...], question: str, answer: str, scene_question: str,
) -> Concept:  # fmt: skip
    """A hand-written concept: its definition answers "what does x mean?", plus one more question."""
    qa = ((f"what does {name} mean?", definition), (question, answer))
    return Concept(name, category, split, rule, phrasings, definition, facts, qa, scene_question)


LEXICON: tuple[Concept, ...] = (
    # --- palette: every colour of the picture (background and shapes) from one palette
    _palette("icy", "id", ICY, (
        "make it icy", "give the scene an icy look", "turn the whole picture icy", "use icy colours for everything")),
    _palette("autumn", "id", ("orange", "brown", "red"), (
        "make it look like autumn", "give the scene an autumn look", "turn the whole picture into autumn",
        "use autumn colours for everything")),
    _palette("forest", "id", ("green", "brown", "black"), (
        "make it look like a forest", "give the scene a forest look", "turn the whole picture into a forest",
        "use forest colours for everything")),
    _palette("ocean", "id", ("blue", "cyan", "green"), (
        "make it look like the ocean", "give the scene an ocean look", "turn the whole picture into the ocean",
        "use ocean colours for everything")),
    _palette("fire", "id", FIRE, (
        "make it look like fire", "give the scene a fire look", "turn the whole picture into fire",
        "use fire colours for everything")),
    _palette("candy", "id", ("pink", "purple", "white"), (
        "make it look like candy", "give the scene a candy look", "turn the whole picture into candy",
        "use candy colours for everything")),
    _palette("sunset", "ood", ("orange", "pink", "purple"), (
        "let it feel like a sunset", "i would like a sunset version of this", "could everything glow like a sunset",
        "repaint it with sunset hues")),
    _palette("desert", "ood", ("yellow", "brown", "orange"), (
        "let it feel like a desert", "i would like a desert version of this", "could everything look like a desert",
        "repaint it with desert hues")),
    _palette("ghostly", "ood", ("white", "gray", "black"), (
        "let it feel ghostly", "i would like a ghostly version of this", "could everything look ghostly",
        "repaint it with ghostly hues")),
    _palette("minty", "ood", ("cyan", "green", "white"), (
        "let it feel minty", "i would like a minty version of this", "could everything look minty and fresh",
        "repaint it with minty hues")),
    # --- atmosphere: the background sets the mood; the shapes stay exactly as they are
    _atmosphere("gloomy", "id", ("gray", "black"), (
        "make the mood gloomy", "give it a gloomy atmosphere", "make the scene feel gloomy")),
    _atmosphere("cheerful", "id", ("yellow", "orange"), (
        "make the mood cheerful", "give it a cheerful atmosphere", "make the scene feel cheerful")),
    _atmosphere("night", "id", ("black", "blue"), (
        "make it night", "give it a night atmosphere", "make the scene feel like night")),
    _atmosphere("cozy", "id", ("brown", "orange"), (
        "make the mood cozy", "give it a cozy atmosphere", "make the scene feel cozy")),
    _atmosphere("dreamy", "ood", ("pink", "purple"), (
        "let the air feel dreamy", "i want a dreamy atmosphere here", "could the mood become dreamy")),
    _atmosphere("wintry", "ood", ("white", "cyan"), (
        "let the air feel wintry", "i want a wintry atmosphere here", "could the mood become wintry")),
    _atmosphere("lush", "ood", ("green",), (
        "let the air feel lush", "i want a lush atmosphere here", "could the mood become lush")),
    # --- transformation: the subject becomes an object built from shapes
    _composite("traffic light", "id", (Part("circle", "red"), Part("circle", "yellow"), Part("circle", "green")),
               "vertical", ("turn the {shape} into a traffic light", "replace the {shape} with a traffic light",
                            "make the {shape} a traffic light")),
    _composite("snowman", "id", (Part("circle", "white", "small"), Part("circle", "white", "large")), "vertical", (
        "turn the {shape} into a snowman", "replace the {shape} with a snowman", "make the {shape} a snowman")),
    _composite("tree", "id", (Part("triangle", "green"), Part("bar", "brown")), "vertical", (
        "turn the {shape} into a tree", "replace the {shape} with a tree", "make the {shape} a tree")),
    _composite("house", "id", (Part("triangle", "red"), Part("square", "yellow")), "vertical", (
        "turn the {shape} into a house", "replace the {shape} with a house", "make the {shape} a house")),
    _composite("candle", "ood", (Part("triangle", "yellow"), Part("bar", "white")), "vertical", (
        "let the {shape} become a candle", "swap the {shape} for a candle", "i want a candle where the {shape} is")),
    _composite("mushroom", "ood", (Part("circle", "red", "large"), Part("square", "white", "small")), "vertical", (
        "let the {shape} become a mushroom", "swap the {shape} for a mushroom",
        "i want a mushroom where the {shape} is")),
    _composite("caterpillar", "ood", (Part("circle", "green"),) * 3, "horizontal", (
        "let the {shape} become a caterpillar", "swap the {shape} for a caterpillar",
        "i want a caterpillar where the {shape} is")),
    # --- quantity: how many of the subject there are
    _concept("double", "quantity", "id", Multiply(2), (
        "double the {shape}", "make two of the {shape}", "add a second {shape} just like it"),
        "double means two of the same shape and colour",
        ("to double a shape, add a second one of the same shape and colour", "a doubled shape appears two times"),
        "how many are there after you double a shape?", "two of the same shape and colour",
        "does this scene show a shape doubled?"),
    _concept("pair", "quantity", "id", Multiply(2, adjacent=True), (
        "make the {shape} a pair", "give the {shape} a twin right beside it", "show the {shape} as a pair"),
        "a pair means two identical shapes side by side in one row",
        ("a pair is two shapes of the same shape, colour and size next to each other",
         "to make a pair, put an identical twin right beside a shape"),
        "what is a pair?", "two identical shapes side by side in one row",
        "does this scene show a pair?"),
    _concept("alone", "quantity", "id", Solo(), (
        "leave the {shape} alone", "keep only the {shape}", "remove everything except the {shape}"),
        "alone means only one shape is left and nothing else",
        ("a shape that is alone has no other shape beside it", "to leave a shape alone, remove every other shape"),
        "how many shapes does an alone scene have?", "only one shape",
        "is there only one shape alone in this scene?"),
    _concept("triple", "quantity", "ood", Multiply(3), (
        "let there be three of the {shape}", "i want the {shape} tripled", "could the {shape} appear three times"),
        "triple means three of the same shape and colour",
        ("to triple a shape, show three of the same shape and colour", "a tripled shape appears three times"),
        "how many are there after you triple a shape?", "three of the same shape and colour",
        "does this scene show a shape tripled?"),
    _concept("crowd", "quantity", "ood", Multiply(4), (
        "let the {shape} become a crowd", "i want a crowd of the {shape}", "could the {shape} fill a crowd"),
        "a crowd means four of the same shape and colour",
        ("a crowd is four shapes of the same shape and colour", "to make a crowd, show one shape four times"),
        "how many shapes are in a crowd?", "four of the same shape and colour",
        "does this scene show a crowd?"),
    # --- composition: where things are
    _concept("symmetric", "composition", "id", Symmetric(), (
        "make it symmetric", "give the scene a symmetric layout", "arrange everything symmetrically"),
        "symmetric means the left side mirrors the right side",
        ("in a symmetric scene every shape on the left has a twin on the right",
         "shapes in the middle column are their own mirror in a symmetric scene"),
        "what does a symmetric scene look like?", "the left side mirrors the right side",
        "is this scene symmetric?"),
    _concept("one side", "composition", "id", Layout(ONE_SIDE), (
        "put everything on one side", "move all the shapes to one side", "gather everything along one edge"),
        "one side means every shape is in the left column, the right column, the top row or the bottom row",
        ("when everything is on one side, all shapes share one edge of the picture",
         "the sides are the left column, the right column, the top row and the bottom row"),
        "where are the shapes when everything is on one side?", "all in one edge row or edge column",
        "is everything on one side in this scene?"),
    _concept("row", "composition", "id", Layout(("top row", "middle row", "bottom row"), 2), (
        "line everything up in a row", "put all the shapes in one row", "arrange everything in a row"),
        "a row means two or more shapes side by side in one row",
        ("shapes in a row all share the top row, the middle row or the bottom row",
         "to line shapes up in a row, put them all in one row"),
        "where are shapes that are in a row?", "all in one row, side by side",
        "are the shapes lined up in a row?"),
    _concept("spotlight", "composition", "id", Solo("large", ("center",)), (
        "put the {shape} in the spotlight", "give the {shape} the spotlight", "make the {shape} the star of the show"),
        "the spotlight means one large shape alone at the center",
        ("a shape in the spotlight is large, alone and at the center",
         "to put a shape in the spotlight, make it large, move it to the center and remove the rest"),
        "what does a shape in the spotlight look like?", "one large shape alone at the center",
        "is one shape in the spotlight in this scene?"),
    _concept("diagonal", "composition", "ood", Layout(("main diagonal", "anti diagonal"), 2), (
        "let everything run along a diagonal", "i want the shapes on a diagonal", "could the shapes form a diagonal"),
        "a diagonal means two or more shapes on a line from one corner through the center to the other corner",
        ("the diagonals are top left, center, bottom right and top right, center, bottom left",
         "shapes on a diagonal all lie on one line between opposite corners"),
        "where are shapes on a diagonal?", "on a line from one corner through the center to the other corner",
        "are the shapes on a diagonal?"),
    _concept("corners", "composition", "ood", Layout(("corners",)), (
        "let everything sit in the corners", "i want the shapes in the corners", "could the shapes move to corners"),
        "corners means every shape sits at the top left, top right, bottom left or bottom right",
        ("the corners are the top left, the top right, the bottom left and the bottom right",
         "when everything is in the corners, no shape is at an edge middle or the center"),
        "where are the corners?", "the top left, the top right, the bottom left and the bottom right",
        "are all the shapes in the corners?"),
    _concept("tower", "composition", "ood", Layout(("left column", "center column", "right column"), 2), (
        "let everything form a tower", "i want the shapes in a tower", "could the shapes stand in a tower"),
        "a tower means two or more shapes stacked in one column",
        ("shapes in a tower all share the left column, the middle column or the right column",
         "to build a tower, stack the shapes in one column"),
        "where are shapes that form a tower?", "all in one column, one above the other",
        "do the shapes form a tower?"),
    # --- compound: two constraints that pull apart, yet both can hold
    _concept("icy but warm", "compound", "id", Contrast(ICY, WARM), (
        "make it icy, but keep the {shape} warm", "give the scene an icy look while the {shape} stays warm",
        "turn everything icy except a warm {shape}"),
        "icy but warm means white, cyan and blue everywhere except one shape that is red, orange or yellow",
        ("warm colours are red, orange and yellow",
         "in an icy but warm scene only the warm shape escapes the white, cyan and blue"),
        "which colours are warm?", "red, orange and yellow",
        "does this scene look icy but warm?"),
    _concept("gloomy but colourful", "compound", "id", Colours(("gray", "black"), BRIGHT), (
        "make the mood gloomy, but keep the shapes colourful", "give it a gloomy atmosphere with colourful shapes",
        "make the scene feel gloomy yet colourful"),
        "gloomy but colourful means a gray or black background with yellow, pink, cyan or orange shapes",
        ("colourful shapes are yellow, pink, cyan or orange",
         "in a gloomy but colourful scene the background is dark and the shapes are bright"),
        "which colours are colourful?", "yellow, pink, cyan and orange",
        "does this scene look gloomy but colourful?"),
    _concept("fiery night", "compound", "id", Colours(("black", "blue"), FIRE), (
        "make it a fiery night", "give it a night atmosphere full of fire",
        "make the scene feel like a night on fire"),
        "a fiery night means a black or blue background with red, orange or yellow shapes",
        ("in a fiery night the background is night and the shapes are fire",
         "a fiery night has red, orange or yellow shapes on a black or blue background"),
        "what colours are the shapes in a fiery night?", "red, orange or yellow",
        "does this scene look like a fiery night?"),
    _concept("symmetric side", "compound", "id", Symmetric(ONE_SIDE), (
        "put everything on one side, but keep it symmetric", "make it symmetric with everything along one edge",
        "arrange everything symmetrically on one side"),
        "symmetric side means every shape is in the top row or the bottom row and the left mirrors the right",
        ("a symmetric side scene is symmetric and has everything on one side",
         "only the top row and the bottom row can be one side and symmetric at once"),
        "where are the shapes in a symmetric side scene?", "in the top row or the bottom row, mirrored",
        "is this scene symmetric on one side?"),
    _concept("frozen fire", "compound", "ood", Colours(ICY, FIRE), (
        "let it feel like frozen fire", "i want fire frozen in ice", "could the shapes burn like fire on ice"),
        "frozen fire means a white, cyan or blue background with red, orange or yellow shapes",
        ("in frozen fire the background is icy and the shapes are fire",
         "frozen fire has red, orange or yellow shapes on a white, cyan or blue background"),
        "what colours are the shapes in frozen fire?", "red, orange or yellow",
        "does this scene look like frozen fire?"),
    _concept("tiny crowd", "compound", "ood", Multiply(4, size="small"), (
        "let the {shape} become a tiny crowd", "i want a crowd of tiny copies of the {shape}",
        "could the {shape} turn into a tiny crowd"),
        "a tiny crowd means four small shapes of the same shape and colour",
        ("a tiny crowd is a crowd where every shape is small",
         "to make a tiny crowd, show one shape four times, small"),
        "how big are the shapes in a tiny crowd?", "small, all four of them",
        "does this scene show a tiny crowd?"),
    _concept("lonely giant", "compound", "ood", Solo("large", CORNERS), (
        "let the {shape} become a lonely giant", "i want the {shape} as a lonely giant",
        "could the {shape} stand by itself as a giant"),
        "a lonely giant means one large shape alone in a corner",
        ("a lonely giant is large, has no other shape with it and sits in a corner",
         "to make a lonely giant, make the shape large, move it to a corner and remove the rest"),
        "where does a lonely giant sit?", "alone in a corner, large",
        "is there a lonely giant in this scene?"),
)  # fmt: skip

CONCEPTS: dict[str, Concept] = {c.name: c for c in LEXICON}


def get_concept(name: str) -> Concept:
    """The concept called `name`; KeyError names the known ones."""
    if name not in CONCEPTS:
        raise KeyError(f"unknown concept {name!r}; expected one of {sorted(CONCEPTS)}")
    return CONCEPTS[name]


def recalled_concept(text: str) -> Concept | None:
    """The concept whose definition `text` states (the longest such definition: "icy but warm ..." before "icy
    ..."), or None. Decoded model text spaces its punctuation ("white , cyan"); definitions do not."""
    text = text.replace(" ,", ",")
    found = [c for c in LEXICON if c.definition in text]
    return max(found, key=lambda c: len(c.definition), default=None)


def concepts_in(category: str | None = None, split: str | None = None) -> list[Concept]:
    """The concepts of one category and/or split, in lexicon order."""
    return [c for c in LEXICON if category in (None, c.category) and split in (None, c.split)]


def knowledge_sentences(concept: Concept) -> list[str]:
    """Plain sentences stating what the concept means (the definition first)."""
    return [concept.definition, *concept.facts]


def qa_pairs(concept: Concept) -> list[tuple[str, str]]:
    """(question, answer) pairs stating the concept's knowledge in question form."""
    return list(concept.qa)


def phrasing_texts(concept: Concept) -> list[str]:
    """Every phrasing with "{shape}" filled by each shape (for building a vocabulary)."""
    return sorted({p.format(shape=shape) for p in concept.phrasings for shape in SHAPES})


def constraint_text(concept: Concept) -> str:
    """The literal half of a concept's definition: "white, cyan and blue" of "icy means white, cyan and blue"."""
    for sep in (" means ", " is "):
        if sep in concept.definition:
            return concept.definition.split(sep, 1)[1]
    raise ValueError(f"{concept.name}: definition {concept.definition!r} has no ' means ' or ' is '")


def _rule_key(rule: Rule) -> Any:
    # Colour sets compare as sets: "white, cyan and blue" is the same constraint as "blue, white and cyan".
    if isinstance(rule, Colours):
        return ("colours", frozenset(rule.background), frozenset(rule.objects))
    return rule


# What random_literal_concept draws from or avoids, fixed by the lexicon (computed once: it runs per corpus example).
_OOD_RULES = frozenset(_rule_key(c.rule) for c in LEXICON if c.split == "ood")
_ID_STRUCTURAL = tuple(c for c in LEXICON if c.split == "id" and not isinstance(c.rule, (Colours, Composite)))
_OOD_STRUCTURAL = tuple(c for c in LEXICON if c.split == "ood" and not isinstance(c.rule, (Colours, Composite)))
_STRUCTURAL = {False: _ID_STRUCTURAL, True: _ID_STRUCTURAL + _OOD_STRUCTURAL}  # by random_literal_concept's ood_rules


def _random_colours(rng: random.Random, n: int) -> tuple[str, ...]:
    return tuple(rng.sample(list(COLORS), n))


def random_literal_concept(rng: random.Random, ood_rules: bool = False, structural_weight: int = 1) -> Concept:
    """A nameless constraint for the pre-training corpus's literal rewrites ("use : white, pink and green").

    Colour rules (palette, background, background plus shape colours) and objects built from shapes get random
    parameters; the other rules (layouts, counts, symmetry, contrast) are those of the `id` concepts. Without
    `ood_rules`, never the rule of an `ood` concept, so an out-of-distribution concept's literal meaning is only
    ever met in its definition, never as something to draw. With it, the `ood` concepts' layouts and counts too
    ("three of the same shape and colour"): a literal skill, as a real base model's is general; the concept's
    name still only ever appears in understanding data (run 20's probe: run 19's model, given the literal
    meaning, got none of 10 simple OOD quantity and composition items right). `structural_weight` is how many times
    more often than each colour kind a layout or count is drawn: at 1 they are 1 draw in 5, the hardest edits
    (hard items move and count shapes) as rare as a background colour."""
    kinds = ("palette", "atmosphere", "colours", "composite") + ("structural",) * structural_weight
    while True:
        kind = rng.choice(kinds)
        if kind == "palette":
            concept = _palette("it", "id", _random_colours(rng, 3), ())
        elif kind == "atmosphere":
            concept = _atmosphere("it", "id", _random_colours(rng, rng.choice((1, 2))), ())
        elif kind == "colours":
            background, shapes = _random_colours(rng, 2), _random_colours(rng, 3)
            concept = _concept("it", "compound", "id", Colours(background, shapes), (),
                               f"it means {_a(_or(background))} background with {_or(shapes)} shapes", (),
                               "", "", "")  # fmt: skip
        elif kind == "composite":
            parts = tuple(Part(rng.choice(SHAPES), rng.choice(list(COLORS))) for _ in range(rng.choice((2, 3))))
            concept = _composite("it", "id", parts, rng.choice(("vertical", "vertical", "horizontal")), ())
        else:
            concept = rng.choice(_STRUCTURAL[ood_rules])
        if ood_rules or _rule_key(concept.rule) not in _OOD_RULES:
            return concept


def scene_has_concept(scene: Scene, concept: Concept) -> bool:
    """Whether the scene shows the concept (for image-grounded QA: "does this scene look icy?").

    A concept about a subject holds when some object of the scene can play the subject."""
    rule = concept.rule
    subjects: list[Obj | None] = list(scene.objects) if rule.subject_based else [None]
    return any(
        check(scene, make_spec(rule.constraints(concept.name, subject, frozenset()), [])).satisfied
        for subject in subjects
    )


def vocabulary() -> set[str]:
    """Every word of the concept texts (phrasings, knowledge, questions, answers), punctuation split off."""
    texts: list[str] = []
    for c in LEXICON:
        texts += [c.name, c.scene_question, *phrasing_texts(c), *knowledge_sentences(c)]
        texts += [t for pair in c.qa for t in pair]
    words: set[str] = set()
    for text in texts:
        for ch in ",.?;:!":
            text = text.replace(ch, f" {ch} ")
        words.update(text.split())
    return words
