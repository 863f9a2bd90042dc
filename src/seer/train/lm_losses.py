"""Batches and losses of the embedded UMM's language-model pre-training (stage B of `seer pretrain`).

Two objectives, each teacher-forced in one forward pass:

- **t2i**: cross-entropy of the generation head on the VQ tokens of the target image, given the literal prompt
  formatted exactly as `JanusUMM.image_prompt_batch` formats it for sampling (a user turn ending in BOI,
  left-padded). A fraction of prompts is replaced by the unconditional prompt that classifier-free guidance
  samples from, built by the sampler's own rule (`unconditional_ids`: keep BOS and BOI, PAD the rest, keep the
  attention mask), so the model learns the very distribution CFG subtracts.
- **text**: next-token cross-entropy on the assistant's answers only (each followed by EOS), never on the user's
  turns. An image task is one turn whose user part shows the image; a packed text document is several turns in
  one sequence, every answer trained on. Sequences are right-padded, so positions need no correction.

The batch builders take only the processor (tokenizer, chat template, image-token count), so DataLoader workers
can run them without the model. Their prompts are checked against the model's own formatting in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import JanusForConditionalGeneration, JanusProcessor

from seer.models.janus import JanusUMM, nearest_codes, unconditional_ids

IGNORE_INDEX = -100  # label of positions that carry no loss (F.cross_entropy's default ignore_index)
Turn = tuple[str, str]  # (user text, assistant answer)


# ---- prompts (mirrors of JanusUMM's formatting, for worker processes that hold no model) ----


def user_turn(processor: JanusProcessor, text: str, num_images: int = 0) -> str:
    """One user turn with `num_images` image placeholders before `text`, ending where the answer starts.

    The same string as `JanusUMM.format_prompt(text, num_images)`.
    """
    content = [{"type": "image"}] * num_images + [{"type": "text", "text": text}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def t2i_prompt_batch(processor: JanusProcessor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids (B, T) and mask (B, T) of image-generation prompts, left-padded, ending in BOI.

    The same tensors as `JanusUMM.image_prompt_batch(prompts)` (on the CPU).
    """
    texts = [user_turn(processor, p) for p in prompts]
    batch = processor(text=texts, generation_mode="image", padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def drop_prompts(input_ids: torch.Tensor, drop: torch.Tensor, processor: JanusProcessor) -> torch.Tensor:
    """Prompt ids (B, T) with the rows where `drop` (B,) is True replaced by the CFG unconditional prompt.

    The attention mask is left as it is: the sampler attends to the unconditional row with the conditional mask.
    """
    tok = processor.tokenizer
    uncond = unconditional_ids(input_ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)
    return torch.where(drop[:, None], uncond, input_ids)


# ---- documents (image tasks and packed text) ----


def encode_documents(
    processor: JanusProcessor,
    documents: Sequence[Sequence[Turn]],
    num_images: Sequence[int],
    given: Sequence[str] | None = None,
) -> tuple[list[list[int]], list[list[bool]]]:
    """Token ids of each document and, per token, whether it is an answer token (trained on).

    A document is ``<bos>`` then, per turn, the user turn (`user_turn`; the first turn of document i shows
    ``num_images[i]`` images, each expanded to BOI + image tokens + EOI as the processor does) followed by the
    answer and EOS. The answer tokens and their EOS are marked, nothing else. `given[i]`, when not empty, is the
    start of document i's last answer that is read but not marked (a think written for the model); it is cut at a
    space, which a word-level tokenizer splits at anyway, so the ids are those of the whole answer.
    """
    tok = processor.tokenizer
    given = given or [""] * len(documents)
    image_text = processor.replace_image_token({}, 0)  # BOI + N image tokens + EOI, as a string
    texts: list[str] = []  # per turn: user turn, its answer's given start ("" but in a last turn), the rest
    for doc, images, last_given in zip(documents, num_images, given):
        for t, (prompt, answer) in enumerate(doc):
            shown = last_given if t == len(doc) - 1 else ""
            if not answer.startswith(shown):
                raise ValueError(f"given text {shown!r} does not start the answer {answer!r}")
            turn = user_turn(processor, prompt, images if t == 0 else 0)
            texts += [turn.replace(tok.image_token, image_text), shown, answer[len(shown) :]]
    pieces = iter(tok(texts, add_special_tokens=False)["input_ids"])  # one tokenizer call for the whole batch
    all_ids, all_marks = [], []
    for doc in documents:
        ids, marks = [tok.bos_token_id], [False]
        for _ in doc:
            user, shown, answer = next(pieces), next(pieces), next(pieces) + [tok.eos_token_id]
            ids += user + shown + answer
            marks += [False] * (len(user) + len(shown)) + [True] * len(answer)
        all_ids.append(ids)
        all_marks.append(marks)
    return all_ids, all_marks


def text_batch(
    processor: JanusProcessor,
    documents: Sequence[Sequence[Turn]],
    num_images: Sequence[int],
    given: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `answer_mask` (all (B, T)) of `encode_documents`."""
    ids, marks = encode_documents(processor, documents, num_images, given)
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), processor.tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(len(ids), length, dtype=torch.long)
    answer_mask = torch.zeros(len(ids), length, dtype=torch.bool)
    for i, (row, mark) in enumerate(zip(ids, marks)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        answer_mask[i, : len(row)] = torch.tensor(mark)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "answer_mask": answer_mask}


# ---- losses ----


def answer_token_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor, token_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted mean next-token cross-entropy over the answer tokens.

    Args:
        logits: (B, T, V); ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
        input_ids: (B, T) the sequence.
        answer_mask: (B, T) True at the tokens that are trained on (never the first token of a row).
        token_weights: (B, T) weight of each token's loss (None: all 1, the plain mean).

    Returns:
        A scalar: sum(weight * loss) / sum(weight) over the marked tokens of the batch.
    """
    labels = input_ids[:, 1:].masked_fill(~answer_mask[:, 1:], IGNORE_INDEX)  # (B, T-1)
    losses = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    )
    mask = answer_mask[:, 1:].flatten().float()
    weights = mask if token_weights is None else token_weights[:, 1:].flatten().float() * mask
    return (losses * weights).sum() / weights.sum()


def verdict_weights(input_ids: torch.Tensor, verdict_ids: Sequence[int], weight: float) -> torch.Tensor:
    """(B, T) token weights: `weight` at the yes/no verdict tokens, 1 elsewhere.

    A verdict is one token after a long think block, so in a plain mean it carries ~1/40 of an answer's gradient;
    the embedded model learned to describe images long before it learned to answer yes/no questions about them.
    """
    is_verdict = torch.isin(input_ids, torch.tensor(list(verdict_ids), device=input_ids.device))
    return torch.where(is_verdict, weight, 1.0)


def text_loss(
    janus: JanusForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    answer_mask: torch.Tensor,
    pixel_values: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """`answer_token_loss` of the Janus text head on a `text_batch`; `pixel_values` (N, 3, H, W) fill the image
    placeholders in reading order (row by row)."""
    logits = janus(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits
    return answer_token_loss(logits, input_ids, answer_mask, token_weights)


@torch.no_grad()
def image_tokens(janus: JanusForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """VQ tokens (B, N) of normalised pixels (B, 3, H, W): the codes `JanusUMM.encode_images` gives.

    Run in float32 even under autocast: a bf16 encoder could pick a different nearest code than inference does.
    """
    vq = janus.model.vqmodel
    with torch.autocast(pixels.device.type, enabled=False):
        latents = vq.quant_conv(vq.encoder(pixels.float()))  # (B, D, h, w)
        return nearest_codes(latents, vq.quantize.embedding.weight.float())


def t2i_loss(
    umm: JanusUMM, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_ids: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the generation head over all image tokens (B, N), teacher-forced.

    ``input_ids`` (B, T) and ``attention_mask`` come from `t2i_prompt_batch` (possibly `drop_prompts`).
    At initialisation the head is near uniform, so the loss starts near ln(codebook size).
    """
    logits = umm.image_token_logits(input_ids, attention_mask, image_token_ids)  # (B, N, K)
    return F.cross_entropy(logits.flatten(0, 1).float(), image_token_ids.flatten())
