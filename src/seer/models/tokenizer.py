"""A small offline word-level tokenizer for models built from scratch (the embedded ShapeWorld UMM).

Every word of a closed vocabulary is one token, so a tiny language model spends no capacity on spelling and
nothing has to be downloaded. Text is split on whitespace and punctuation is split off into tokens of its own
("red." -> "red", "."); a vocabulary word that contains punctuation itself (e.g. "<think>") is registered as an
added token and so stays whole. Decoding joins tokens with single spaces. Words are case-sensitive.

The special tokens play the roles of the real Janus tokenizer's, and the image ones are registered as *named*
special tokens (``tok.image_token``, ``tok.boi_token``, ``tok.eoi_token``), which ``JanusProcessor`` requires.

    tok = build_word_tokenizer(["a", "red", "circle"])
    tok("a red circle .")["input_ids"]  # [<bos>, a, red, circle, .] - <bos> is prepended like Llama does
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from seer.errors import SeerError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
IMAGE, BOI, EOI = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
# Their ids are their positions here: <pad> is 0, <bos> is 1, ...
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK, IMAGE, BOI, EOI)
# Filler for vocabularies padded to a real model's size; never produced by encoding real text.
UNUSED_FORMAT = "<unused_{}>"

# The built-in vocabulary of the default tiny model: ShapeWorld's literal grammar, the chat roles and the
# answer format. `seer pretrain` passes the world's full vocabulary instead.
DEFAULT_WORDS: tuple[str, ...] = (
    # chat roles and answer format
    "user", "assistant", ":", ".", ",", "?", "<think>", "</think>", "<answer>", "</answer>", "Yes", "No",
    # colours, shapes, sizes, positions
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "white", "gray", "black",
    "circle", "square", "triangle", "cross", "ring", "bar", "small", "large",
    "top", "bottom", "left", "right", "center",
    # grammar
    "a", "an", "the", "and", "at", "on", "of", "in", "is", "background", "image", "first", "second",
    "does", "match", "prompt", "better", "than", "what", "this", "color", "shape", "describe", "draw",
)  # fmt: skip


def build_word_tokenizer(words: Sequence[str], vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer whose vocabulary is the special tokens followed by `words`.

    Args:
        words: the vocabulary, one token per word, in id order after the specials. Duplicates are dropped.
        vocab_size: pad the vocabulary with ``<unused_i>`` tokens up to this size, so that the tokenizer covers a
            model whose embedding table is larger (the random-weight Janus-Pro shapes).

    Returns:
        A left-padding ``PreTrainedTokenizerFast`` that prepends ``<bos>``; save it with ``save_pretrained`` and
        load it with ``PreTrainedTokenizerFast.from_pretrained``.
    """
    vocab: dict[str, int] = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    whole_words: list[str] = []  # words the pre-tokenizer would split, kept whole as added tokens
    for word in words:
        if not word or any(c.isspace() for c in word):
            raise SeerError(f"tokenizer words: expected non-empty words without whitespace, got {word!r}")
        if word in SPECIAL_TOKENS:
            raise SeerError(f"tokenizer words: {word!r} is a special token and cannot also be a word")
        if word not in vocab:
            vocab[word] = len(vocab)
            if _has_punctuation(word):
                whole_words.append(word)
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise SeerError(f"tokenizer vocab_size: expected >= {len(vocab)} (specials + words), got {vocab_size}")
        for i in range(len(vocab), vocab_size):
            vocab[UNUSED_FORMAT.format(i)] = i

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    # WordPiece without continuation prefixes is a plain space join; cleanup would glue "red ." into "red.".
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    # Added tokens are matched before pre-tokenization, which keeps words like "<think>" in one piece.
    backend.add_tokens([AddedToken(word, normalized=False) for word in whole_words])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",  # generation appends on the right, so prompts are padded on the left
        # A dict registers *named* special tokens: tok.image_token, tok.boi_token, tok.eoi_token (+ their ids).
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI},
    )


def _has_punctuation(word: str) -> bool:
    """Whether the punctuation pre-tokenizer would split `word` (ASCII punctuation and Unicode class P*)."""
    return any(c in string.punctuation or unicodedata.category(c).startswith("P") for c in word)
