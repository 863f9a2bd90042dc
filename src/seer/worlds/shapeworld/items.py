"""VIE items over ShapeWorld: a literal prompt, an instruction, its spec, and a gold elaboration.

`generate_items(seed, n_per_cell)` makes `n_per_cell` items for every (category, difficulty, split) cell:

- ``simple``: one concept of the category.
- ``hard``: that concept plus a second one from another category (never a compound), joined in one
  instruction ("make it icy and line everything up in a row"). Two concepts combine only if they change
  disjoint aspects of the scene and at most one of them is about a subject, so both can hold at once.
  Compounds are paradoxes already; a hard compound item adds a second concept to one.

Every item is checked before it is kept: the prompt scene fails the spec (so naive concatenation, which the
literal generator draws as the prompt, fails: the cognitive gap), the prompt keeps itself, and the gold
scene, a minimal edit of the prompt, passes. ID items use only ID concepts and phrasings, OOD items only OOD.

An item is a dict (one JSONL line): id, category, difficulty, split, prompt, instruction, spec, gold,
concepts (the category's concept first). Items are deterministic in the seed, cell by cell: asking for fewer
cells does not change the items of the others.

`perturb_scene` and `failing_elaborations` are raw material for the RLVR pairs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from seer.worlds.shapeworld.concepts import (
    CATEGORIES,
    FACETS,
    Colours,
    Composite,
    Concept,
    Contrast,
    Layout,
    Multiply,
    Rule,
    Solo,
    Symmetric,
    concepts_in,
)
from seer.worlds.shapeworld.grammar import describe, parse
from seer.worlds.shapeworld.scene import (
    COLORS,
    MAX_OBJECTS,
    POSITIONS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    cell_of,
    position_at,
    random_scene,
)
from seer.worlds.shapeworld.spec import LINES, check, constraint, make_spec
from seer.worlds.shapeworld.taxonomy import classify_scene, item_field

DIFFICULTIES: tuple[str, ...] = ("simple", "hard")
# How a hard item joins its two phrasings; OOD items get their own joins, as they get their own phrasings.
CONNECTORS: dict[str, tuple[str, ...]] = {"id": (" and ", ", then "), "ood": ("; also ", ", and after that ")}
PROMPT_MAX_OBJECTS = 3  # prompts have 1-3 objects; a gold elaboration may have 4
MAX_ATTEMPTS = 2000  # prompt draws per item before giving up (a bug, not bad luck: see _cell_items)

Edit = Callable[[Scene, str | None, Any, random.Random], Scene | None]


# ---------------------------------------------------------------------------------------------------------------
# Spec of a prompt + concepts


def _is_colour_rule(rule: Rule) -> bool:
    return rule.aspects <= {"background", "color"}


def compatible(a: Concept, b: Concept) -> bool:
    """Whether two concepts can be asked for in one item: disjoint aspects, at most one about a subject."""
    return not (a.rule.aspects & b.rule.aspects) and not (a.rule.subject_based and b.rule.subject_based)


def _edit_order(concepts: Sequence[Concept]) -> list[Concept]:
    # Structure first (cells, counts, shapes), colours last: a colour edit keeps equal colours equal, so it
    # cannot break a pair or a mirror built before it, while moving objects never changes a colour.
    return sorted(concepts, key=lambda c: _is_colour_rule(c.rule))


def _intersect(facet_sets: list[frozenset[str] | None]) -> frozenset[str] | None:
    out = FACETS
    for facets in facet_sets:
        if facets is None:
            return None
        out &= facets
    return out


def _filter_of(obj: Obj, facets: frozenset[str]) -> dict[str, list[str]]:
    return {
        "shapes": [obj.shape] if "shape" in facets else [],
        "colors": [obj.color] if "color" in facets else [],
        "sizes": [obj.size] if "size" in facets else [],
        "positions": [obj.pos] if "pos" in facets else [],
    }


def build_spec(prompt: Scene, subject: Obj | None, concepts: Sequence[Concept]) -> dict[str, list[dict[str, Any]]]:
    """The spec of asking for `concepts` of `prompt` (`subject`: the object a subject concept is about)."""
    if any(c.rule.subject_based for c in concepts) and subject is None:
        raise ValueError(f"concepts {[c.name for c in concepts]} need a subject")
    constraints: list[dict[str, Any]] = []
    for c in concepts:
        free = frozenset().union(*(o.rule.aspects for o in concepts if o is not c))
        constraints += c.rule.constraints(c.name, subject, free)

    keep: list[dict[str, Any]] = []
    if not any("background" in c.rule.aspects for c in concepts):
        keep.append(constraint("background", colors=[prompt.background]))
    subject_facets = _intersect([c.rule.kept_facets()[0] for c in concepts])
    other_facets = _intersect([c.rule.kept_facets()[1] for c in concepts])
    # "At least k objects like this": identical prompt objects need k matches, not one match k times.
    wanted: Counter[tuple[tuple[str, tuple[str, ...]], ...]] = Counter()
    for obj in prompt.objects:
        facets = subject_facets if obj == subject else other_facets
        if facets:
            wanted[tuple((k, tuple(v)) for k, v in _filter_of(obj, facets).items())] += 1
    for key, k in wanted.items():
        keep.append(constraint("count", min=k, max=MAX_OBJECTS, **{name: list(v) for name, v in key}))
    if any(c.rule.keep_only for c in concepts) and other_facets is not None:
        parts = dict.fromkeys(
            (o.shape, o.color if "color" in other_facets else "", o.size if "size" in other_facets else "")
            for o in prompt.objects
        )
        keep.append(constraint("only", shapes=[p[0] for p in parts], colors=[p[1] for p in parts],
                               sizes=[p[2] for p in parts]))  # fmt: skip

    total: int | None = len(prompt.objects)
    changer = ""
    for c in _edit_order(concepts):
        new = c.rule.total(total) if total is not None else None
        if new != total:
            changer = c.name
        total = new
    if total is not None:
        if changer:
            constraints.append(constraint("count", changer, min=total, max=total))
        else:
            keep.append(constraint("count", min=total, max=total))
    return make_spec(constraints, keep)


# ---------------------------------------------------------------------------------------------------------------
# Gold edits: the minimal change of a scene that does what one rule asks


def _subject(scene: Scene, shape: str | None) -> Obj:
    matches = [o for o in scene.objects if o.shape == shape]
    if len(matches) != 1:
        raise ValueError(f"expected one {shape} as the subject, found {len(matches)}")
    return matches[0]


def _recolour(
    objects: Sequence[Obj], palette: Sequence[str], background: str, rng: random.Random
) -> dict[str, str]:
    """Old colour -> new colour for `objects`, into `palette` minus the background. Colours already allowed stay;
    equal colours stay equal (so pairs and mirrors survive); different ones stay different where possible."""
    allowed = [c for c in palette if c != background]
    mapping = {o.color: o.color for o in objects if o.color in allowed}
    for old in dict.fromkeys(o.color for o in objects):
        if old not in mapping:
            unused = [c for c in allowed if c not in mapping.values()]
            mapping[old] = rng.choice(unused or allowed)
    return mapping


def _pick_background(scene: Scene, options: Sequence[str], keep_colours: Sequence[str], rng: random.Random) -> str:
    """The background among `options` that forces the fewest object recolourings (the current one if allowed)."""
    if scene.background in options:
        return scene.background
    shuffled = rng.sample(list(options), len(options))
    return min(shuffled, key=lambda b: sum(o.color == b or o.color not in keep_colours for o in scene.objects))


def _edit_colours(scene: Scene, shape: str | None, rule: Colours, rng: random.Random) -> Scene | None:
    object_colours = {o.color for o in scene.objects}
    if rule.objects:
        options = [b for b in rule.background if any(c != b for c in rule.objects)]
    else:
        options = [b for b in rule.background if b not in object_colours]
    if not options:
        return None
    background = _pick_background(scene, options, rule.objects or tuple(COLORS), rng)
    if not rule.objects:
        return Scene(background, scene.objects)
    mapping = _recolour(scene.objects, rule.objects, background, rng)
    return Scene(background, tuple(replace(o, color=mapping[o.color]) for o in scene.objects))


def _edit_contrast(scene: Scene, shape: str | None, rule: Contrast, rng: random.Random) -> Scene | None:
    subject = _subject(scene, shape)
    others = [o for o in scene.objects if o != subject]
    background = _pick_background(scene, rule.base, rule.base, rng)
    mapping = _recolour(others, rule.base, background, rng)
    accent = subject.color if subject.color in rule.accent else rng.choice(rule.accent)
    objects = [replace(o, color=mapping[o.color]) for o in others] + [replace(subject, color=accent)]
    return Scene(background, tuple(objects))


def _edit_composite(scene: Scene, shape: str | None, rule: Composite, rng: random.Random) -> Scene | None:
    subject = _subject(scene, shape)
    others = [o for o in scene.objects if o != subject]
    taken = {cell_of(o.pos) for o in others}
    step = (1, 0) if rule.axis == "vertical" else (0, 1)
    anchors = []
    for row in range(3):
        for col in range(3):
            cells = [(row + i * step[0], col + i * step[1]) for i in range(len(rule.parts))]
            if all(r < 3 and c < 3 and (r, c) not in taken for r, c in cells):
                anchors.append(cells)
    # Build the object where the subject was, if it fits there.
    home = [cells for cells in anchors if cell_of(subject.pos) in cells]
    if not (home or anchors):
        return None
    cells = rng.choice(home or anchors)
    parts = [
        Obj(position_at(*cell), p.shape, p.color, p.size or subject.size) for cell, p in zip(cells, rule.parts)
    ]
    return Scene(scene.background, tuple(others + parts))


def _edit_multiply(scene: Scene, shape: str | None, rule: Multiply, rng: random.Random) -> Scene | None:
    subject = _subject(scene, shape)
    subject = replace(subject, size=rule.size or subject.size)
    others = [o for o in scene.objects if o.shape != shape]
    free = [p for p in POSITIONS if p not in {o.pos for o in others} and p != subject.pos]
    if rule.adjacent:
        row, col = cell_of(subject.pos)
        beside = [position_at(row, c) for c in (col - 1, col + 1) if 0 <= c < 3 and position_at(row, c) in free]
        if beside:
            return Scene(scene.background, tuple(others + [subject, replace(subject, pos=rng.choice(beside))]))
        # No room beside it: move the subject to a free pair of neighbouring cells.
        open_cells = set(free) | {subject.pos}
        pairs = [
            (position_at(r, c), position_at(r, c + 1))
            for r in range(3)
            for c in range(2)
            if {position_at(r, c), position_at(r, c + 1)} <= open_cells
        ]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        return Scene(scene.background, tuple(others + [replace(subject, pos=a), replace(subject, pos=b)]))
    if len(free) < rule.count - 1:
        return None
    copies = [replace(subject, pos=p) for p in rng.sample(free, rule.count - 1)]
    return Scene(scene.background, tuple(others + [subject] + copies))


def _edit_solo(scene: Scene, shape: str | None, rule: Solo, rng: random.Random) -> Scene | None:
    subject = _subject(scene, shape)
    pos = subject.pos if not rule.positions or subject.pos in rule.positions else rng.choice(rule.positions)
    return Scene(scene.background, (replace(subject, pos=pos, size=rule.size or subject.size),))


def _edit_layout(scene: Scene, shape: str | None, rule: Layout, rng: random.Random) -> Scene | None:
    objects = list(scene.objects)
    lines = [line for line in rule.lines if len(LINES[line]) >= len(objects)]
    if len(objects) < rule.min_objects or not lines:
        return None
    # The line that already holds most objects needs the fewest moves.
    line = max(rng.sample(lines, len(lines)), key=lambda name: sum(o.pos in LINES[name] for o in objects))
    cells = LINES[line]
    staying = [o for o in objects if o.pos in cells]
    free = [p for p in cells if p not in {o.pos for o in staying}]
    movers = [o for o in objects if o.pos not in cells]
    moved = [replace(o, pos=p) for o, p in zip(movers, rng.sample(free, len(movers)))]
    return Scene(scene.background, tuple(staying + moved))


def _same_look(a: Obj, b: Obj) -> bool:
    return (a.shape, a.color, a.size) == (b.shape, b.color, b.size)


def _edit_symmetric(scene: Scene, shape: str | None, rule: Symmetric, rng: random.Random) -> Scene | None:
    if rule.lines:
        return _symmetric_row(scene, rule, rng)
    placed = {o.pos: o for o in scene.objects}
    for obj in scene.objects:
        if placed.get(obj.pos) is not obj:
            continue
        row, col = cell_of(obj.pos)
        if col == 1:
            continue
        mirror = position_at(row, 2 - col)
        twin = placed.get(mirror)
        if twin is not None and _same_look(twin, obj):
            continue
        if twin is None:  # mirror it: add a copy in the mirrored cell
            placed[mirror] = replace(obj, pos=mirror)
            continue
        middle = position_at(row, 1)
        if middle in placed:
            return None
        del placed[obj.pos]  # its mirrored cell is taken by something else: move it to the middle column
        placed[middle] = replace(obj, pos=middle)
    if len(placed) > MAX_OBJECTS:
        return None
    return Scene(scene.background, tuple(placed.values()))


def _symmetric_row(scene: Scene, rule: Symmetric, rng: random.Random) -> Scene | None:
    """Everything in one row that lies in `rule.lines`, mirrored: one look in the middle, one on both sides."""
    rows = [line for line in rule.lines if line.endswith("row")]
    looks = Counter((o.shape, o.color, o.size) for o in scene.objects)
    options: list[tuple[tuple[str, str, str] | None, tuple[str, str, str] | None]] = []
    for middle in [None, *looks]:
        for sides in [None, *looks]:
            if middle == sides or (middle is None and sides is None):
                continue
            counts = Counter({middle: 1} if middle else {}) + Counter({sides: 2} if sides else {})
            if all(counts[look] >= k for look, k in looks.items()):
                options.append((middle, sides))
    if not options or not rows:
        return None
    middle, sides = rng.choice(options)
    row = rng.choice(rows)
    left, centre, right = LINES[row]
    objects = []
    if middle:
        objects.append(Obj(centre, middle[0], middle[1], middle[2]))
    if sides:
        objects += [Obj(left, sides[0], sides[1], sides[2]), Obj(right, sides[0], sides[1], sides[2])]
    return Scene(scene.background, tuple(objects))


_EDITS: dict[type, Edit] = {
    Colours: _edit_colours,
    Contrast: _edit_contrast,
    Composite: _edit_composite,
    Multiply: _edit_multiply,
    Solo: _edit_solo,
    Layout: _edit_layout,
    Symmetric: _edit_symmetric,
}


def elaborate(prompt: Scene, subject: Obj | None, concepts: Sequence[Concept], rng: random.Random) -> Scene | None:
    """A gold scene: `prompt` minimally edited to do what `concepts` ask, or None when this prompt cannot."""
    scene = prompt
    shape = subject.shape if subject is not None else None
    for c in _edit_order(concepts):
        try:
            edited = _EDITS[type(c.rule)](scene, shape, c.rule, rng)
        except ValueError:  # the edit made an invalid scene (e.g. a part coloured like the background)
            return None
        if edited is None:
            return None
        scene = edited
    return scene


# ---------------------------------------------------------------------------------------------------------------
# Item generation


def _phrase(concept: Concept, subject: Obj | None, rng: random.Random) -> str:
    return rng.choice(concept.phrasings).format(shape=subject.shape if subject else "")


def nameable_subjects(prompt: Scene) -> list[Obj]:
    """The objects "the <shape>" names unambiguously: those whose shape is unique in the prompt."""
    counts = Counter(o.shape for o in prompt.objects)
    return [o for o in prompt.objects if counts[o.shape] == 1]


def _draw_item(
    concepts: Sequence[Concept], split: str, rng: random.Random
) -> tuple[Scene, Obj | None, dict[str, Any], Scene, str] | None:
    """One attempt: a random prompt for `concepts`, or None if it does not make a valid item."""
    prompt = random_scene(rng, max_objects=PROMPT_MAX_OBJECTS)
    subject = None
    if any(c.rule.subject_based for c in concepts):
        candidates = nameable_subjects(prompt)
        if not candidates:
            return None
        subject = rng.choice(candidates)
    spec = build_spec(prompt, subject, concepts)
    at_prompt = check(prompt, spec)
    if at_prompt.satisfied or not at_prompt.kept:
        return None
    gold = elaborate(prompt, subject, concepts, rng)
    if gold is None or not check(gold, spec).passed:
        return None
    phrases = [_phrase(c, subject, rng) for c in concepts]
    if len(phrases) == 2 and rng.random() < 0.5:
        phrases.reverse()
    instruction = rng.choice(CONNECTORS[split]).join(phrases)
    return prompt, subject, spec, gold, instruction


def _partners(concept: Concept) -> list[Concept]:
    """Second concepts a hard item may add: same split, another category, not a compound, compatible."""
    return [
        c
        for c in concepts_in(split=concept.split)
        if c.category not in (concept.category, "compound") and compatible(concept, c)
    ]


def _cell_items(
    seed: int, n: int, category: str, difficulty: str, split: str, id_prefix: str
) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}/{category}/{difficulty}/{split}")
    pool = concepts_in(category, split)
    if not pool:
        raise ValueError(f"no {split} concepts in category {category!r}")
    order = rng.sample(pool, len(pool))  # round robin over the category's concepts, in a seeded order
    items: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for index in range(n):
        primary = order[index % len(order)]
        for _ in range(MAX_ATTEMPTS):
            concepts = [primary]
            if difficulty == "hard":
                concepts.append(rng.choice(_partners(primary)))
            drawn = _draw_item(concepts, split, rng)
            if drawn is None:
                continue
            prompt, _, spec, gold, instruction = drawn
            if (describe(prompt), instruction) in seen:
                continue
            seen.add((describe(prompt), instruction))
            items.append({
                "id": f"{id_prefix}-{split}-{category}-{difficulty}-{index:04d}",
                "category": category,
                "difficulty": difficulty,
                "split": split,
                "prompt": describe(prompt),
                "instruction": instruction,
                "spec": spec,
                "gold": describe(gold),
                "concepts": [c.name for c in concepts],
            })  # fmt: skip
            break
        else:
            # Every concept has many valid prompts, so this is a bug in a rule or an edit, not bad luck.
            raise RuntimeError(f"no valid {split} {difficulty} item for {primary.name!r} in {MAX_ATTEMPTS} draws")
    return items


def generate_items(
    seed: int,
    n_per_cell: int,
    *,
    splits: Sequence[str] = ("id",),
    difficulties: Sequence[str] = DIFFICULTIES,
    categories: Sequence[str] = CATEGORIES,
    id_prefix: str = "vie",
) -> list[dict[str, Any]]:
    """`n_per_cell` items for every (category, difficulty, split) cell, deterministic in `seed`."""
    for name, values, allowed in (
        ("splits", splits, ("id", "ood")),
        ("difficulties", difficulties, DIFFICULTIES),
        ("categories", categories, CATEGORIES),
    ):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name}: unknown {bad[0]!r}; expected some of {list(allowed)}")
    return [
        item
        for split in splits
        for category in categories
        for difficulty in difficulties
        for item in _cell_items(seed, n_per_cell, category, difficulty, split, id_prefix)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Raw material for RLVR pairs


def perturb_scene(scene: Scene, rng: random.Random) -> Scene:
    """A different valid scene: one attribute changed (the background, or one object's shape, colour, size or
    cell). An image of it fails to match the literal prompt of `scene`."""
    used = {o.color for o in scene.objects}
    while True:
        what = rng.choice(("background", "shape", "color", "size", "pos"))
        if what == "background":
            options = [c for c in COLORS if c not in used and c != scene.background]
            if options:
                return Scene(rng.choice(options), scene.objects)
            continue
        obj = rng.choice(scene.objects)
        others = tuple(o for o in scene.objects if o is not obj)
        if what == "shape":
            new = replace(obj, shape=rng.choice([s for s in SHAPES if s != obj.shape]))
        elif what == "color":
            new = replace(obj, color=rng.choice([c for c in COLORS if c not in (obj.color, scene.background)]))
        elif what == "size":
            new = replace(obj, size=next(s for s in SIZES if s != obj.size))
        else:
            free = [p for p in POSITIONS if p not in {o.pos for o in scene.objects}]
            new = replace(obj, pos=rng.choice(free))
        return Scene(scene.background, others + (new,))


def failing_elaborations(item: Any, rng: random.Random, attempts: int = 500) -> dict[str, str]:
    """Literal texts of reprompts that fail the item, by failure type (see `taxonomy.py`):

    - "omission": the prompt itself (the instruction ignored);
    - "hallucination": the gold elaboration with one attribute changed so that it fails the spec or the keep,
      and is not an omission;
    - "laziness": the prompt with the concept names pasted on (the literal grammar cannot read it).
    """
    prompt_text = item_field(item, "prompt")
    gold = parse(item_field(item, "gold"))
    for _ in range(attempts):
        candidate = perturb_scene(gold, rng)
        if classify_scene(candidate, item) == "hallucination":
            break
    else:
        raise RuntimeError(f"no hallucination found for item {item_field(item, 'id')!r} in {attempts} perturbations")
    names = " and ".join(item_field(item, "concepts"))
    return {"omission": prompt_text, "hallucination": describe(candidate), "laziness": f"{prompt_text}, {names}"}
