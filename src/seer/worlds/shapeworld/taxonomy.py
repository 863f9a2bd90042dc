"""The paper's failure taxonomy of a reprompt, read from its text through the literal grammar and the item's spec.

`classify_reprompt(text, item)` returns one of OUTCOMES. With R the scene the text parses to (strictly, by
`grammar.try_parse`) and P the prompt's scene, the rules are, in order:

1. R exists, satisfies every constraint and keeps every keep entry: **success**.
2. R exists, keeps the prompt, and *ignores* every concept it fails: for each concept with a failed constraint,
   R agrees with P on every aspect that concept changes (e.g. icy changes background and colours: same
   background, same multiset of object colours). R == P is the plainest case. **omission**.
3. R exists otherwise (the keep fails, or R changed what a concept touches without satisfying it): a change
   the instruction did not ask for. **hallucination**.
4. R does not exist, the text contains an *instruction word* (a word of the instruction or of the item's
   concept names that the literal grammar never uses), and after deleting those words (and punctuation other
   than commas) some contiguous run of words parses: the instruction was pasted on, not integrated
   ("a large red circle at the top on a white background, icy"). **laziness**.
5. Otherwise: **malformed**.

Aspects agree when: background - the same background; color/shape/size/pos - the same multiset of object
colours/shapes/sizes/cells; count - the same number of objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import describe, parse, try_parse
from seer.worlds.shapeworld.scene import COLORS, POSITIONS, SHAPES, SIZES, Obj, Scene
from seer.worlds.shapeworld.spec import check, violation

OUTCOMES: tuple[str, ...] = ("success", "laziness", "omission", "hallucination", "malformed")
_STRIP = ".:;!?\"'()"


def item_field(item: Any, key: str) -> Any:
    """`item[key]` for a dict item, `item.key` for any other object (e.g. a dataclass row)."""
    return item[key] if isinstance(item, Mapping) else getattr(item, key)


def _words(text: str) -> list[str]:
    """Lower-case words; a comma is its own word (as in the grammar), other punctuation is dropped."""
    words = []
    for raw in text.lower().replace(",", " , ").split():
        word = raw.strip(_STRIP)
        if word:
            words.append(word)
    return words


@lru_cache(maxsize=1)
def literal_vocabulary() -> frozenset[str]:
    """Every word the literal grammar writes, read off `describe` of scenes that use every name once."""
    scenes = [Scene("white", (Obj(p, "circle", "red", "small"),)) for p in POSITIONS]
    scenes += [Scene("white", (Obj("top", s, c, z),)) for s in SHAPES for c in COLORS if c != "white" for z in SIZES]
    scenes += [Scene("black", tuple(Obj(p, "circle", "red", "small") for p in POSITIONS[:n])) for n in (2, 3)]
    scenes += [Scene(c, (Obj("top", "circle", "black" if c != "black" else "white", "small"),)) for c in COLORS]
    return frozenset(w for s in scenes for w in _words(describe(s)))


def instruction_words(item: Any) -> set[str]:
    """Words of the instruction and concept names that the literal grammar never uses."""
    text = " ".join([item_field(item, "instruction"), *item_field(item, "concepts")])
    return {w for w in _words(text) if w != ","} - literal_vocabulary()


def _aspect_agrees(r: Scene, p: Scene, aspect: str) -> bool:
    if aspect == "background":
        return r.background == p.background
    if aspect == "count":
        return len(r.objects) == len(p.objects)
    attr = {"color": "color", "shape": "shape", "size": "size", "pos": "pos"}[aspect]
    return sorted(getattr(o, attr) for o in r.objects) == sorted(getattr(o, attr) for o in p.objects)


def classify_scene(scene: Scene, item: Any) -> str:
    """Rules 1-3 of the module docstring for a reprompt that parsed to `scene`."""
    spec = item_field(item, "spec")
    result = check(scene, spec)
    if result.passed:
        return "success"
    if result.kept:
        prompt = parse(item_field(item, "prompt"))
        failed = {c["concept"] for c in spec["constraints"] if violation(scene, c) is not None}
        ignored = all(
            _aspect_agrees(scene, prompt, aspect) for name in failed for aspect in get_concept(name).rule.aspects
        )
        if ignored:
            return "omission"
    return "hallucination"


def is_lazy(text: str, item: Any) -> bool:
    """Rule 4 of the module docstring (call it on text that does not parse)."""
    words = _words(text)
    pasted = instruction_words(item)
    if not any(w in pasted for w in words):
        return False
    rest = [w for w in words if w not in pasted]
    starts = [i for i, w in enumerate(rest) if w == "a"]
    ends = [j + 1 for j, w in enumerate(rest) if w == "background"]
    return any(try_parse(" ".join(rest[i:j])) is not None for i in starts for j in ends if j > i)


def classify_reprompt(text: str, item: Any) -> str:
    """The failure type of a reprompt text for `item` (one of OUTCOMES; the rules are in the module docstring).

    `item` is a VIE item dict or any object with `spec`, `prompt`, `instruction` and `concepts` attributes."""
    scene = try_parse(text)
    if scene is not None:
        return classify_scene(scene, item)
    return "laziness" if is_lazy(text, item) else "malformed"
