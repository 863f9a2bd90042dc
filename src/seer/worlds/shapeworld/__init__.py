"""ShapeWorld: the embedded world of coloured shapes where every part of SEER is measurable on a CPU."""
