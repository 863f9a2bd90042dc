"""One instruction question answered by hand in the corpus's checklist form, for the tests of the checklist
(`seer.worlds.shapeworld.checklist`) and of the benchmarks and rewards that read it."""

from seer.data.vie import VIEItem
from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.items import build_spec

PROMPT = "a large red circle at the center on a white background"
ICY_SCENE = "a large blue circle at the center on a white background"
# Decoded spacing: icy frees every colour, so the keep check compares the circle's size and shape in its cell, and
# the shape count.
RIGHT = (
    f"<think> the first image shows {ICY_SCENE} . icy means white , cyan and blue . the background white Yes , "
    "the blue circle Yes . keep : a large circle at the center : a large circle Yes , one shape Yes </think> "
    "<answer> Yes </answer>"
)
NO_RECALL = RIGHT.replace("icy means white , cyan and blue . ", "")


def icy_item() -> VIEItem:
    """The item RIGHT answers: "make it icy" on PROMPT."""
    spec = build_spec(parse(PROMPT), None, [get_concept("icy")])
    return VIEItem("t-0", "palette", "simple", "id", PROMPT, "make it icy", spec=spec, concepts=["icy"])
