"""The strict think/answer format."""

import pytest

from seer.formats import format_answer, parse_answer


def test_round_trip():
    text = format_answer("icy means white , cyan and blue", "Yes")
    assert text == "<think> icy means white , cyan and blue </think> <answer> Yes </answer>"
    assert parse_answer(text) == ("icy means white , cyan and blue", "Yes")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think><answer>No</answer>", ("a", "No")),  # no spaces needed
        ("  <think> </think>\n<answer> Yes </answer> ", ("", "Yes")),  # empty reasoning is allowed
        ("<answer> Yes </answer>", None),  # no think block
        ("<think> a </think> <answer> Yes </answer> extra", None),  # text after the answer
        ("well <think> a </think> <answer> Yes </answer>", None),  # text before the think
        ("<think> a </think> <answer> Yes </answer> </answer>", None),  # repeated closing tag
        ("<think> a </think> <answer> Yes </answer> <answer> No </answer>", None),  # two answers
        ("<think> a <think> b </think> <answer> Yes </answer>", None),  # nested think
        ("<think> a </think> <answer> Yes", None),  # truncated
    ],
)
def test_strict_parse(text, expected):
    assert parse_answer(text) == expected
