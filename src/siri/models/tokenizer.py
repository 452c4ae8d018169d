"""A lossless word-level tokenizer over a closed vocabulary, for the tiny built-in model.

Why word level: the environments speak a small, closed language (ALFWorld's commands, a shop
catalog), so one token per word keeps prompts short and lets a few-million-parameter model learn in
minutes. Why lossless: actions are matched exactly against admissible strings, and a skill-augmented
prompt must tokenize to the plain prompt plus the skills block, so ``decode(encode(text)) == text``.

How: spaces become ``▁`` (Metaspace) and stay glued to the word that follows them; every word,
punctuation mark and other whitespace character is its own token. The vocabulary holds each word both
with and without the leading ``▁`` so no word seen in the corpus is ever unknown, wherever it appears.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

SPACE = "▁"
PAD, UNK, BOS = "<pad>", "<unk>", "<s>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# Tags the prompts ask for; single tokens so that stopping at ``</action>`` is one token.
TAG_TOKENS = ("<think>", "</think>", "<action>", "</action>")
SPECIAL_TOKENS = (PAD, UNK, BOS, IM_START, IM_END, *TAG_TOKENS)

# ChatML-style template: what ``apply_chat_template`` renders for the tiny model.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# One piece per word (with an optional leading ▁), per ▁ run, per punctuation mark or other whitespace.
_PIECE_PATTERN = r"▁?\w+|▁|[^\w▁]"
_WORD_RE = re.compile(r"\w+|[^\w\s]|\s")


def corpus_pieces(text: str) -> set[str]:
    """The bare pieces (words, punctuation, whitespace characters other than space) of ``text``."""
    return {p for p in _WORD_RE.findall(text) if p != " "}


def build_word_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary covers every word of ``texts`` (and ``extra_words``).

    Deterministic: the vocabulary is sorted, so the same corpus always gives the same ids.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    # Chat roles, every ASCII punctuation mark, whitespace characters and digits are always covered.
    pieces: set[str] = {"system", "user", "assistant", "\n", "\t", "\r", *string.punctuation, *string.digits}
    for text in set(texts):
        pieces |= corpus_pieces(text)
    for word in extra_words:
        pieces |= corpus_pieces(word)
    vocab_list = [*list(SPECIAL_TOKENS), SPACE]
    for piece in sorted(pieces):
        vocab_list.append(piece)
        if re.fullmatch(r"\w+", piece):
            vocab_list.append(SPACE + piece)
    vocab = {}
    for token in vocab_list:
        vocab.setdefault(token, len(vocab))

    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=False),
            pre_tokenizers.Split(Regex(_PIECE_PATTERN), behavior="isolated"),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="never", split=False)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=IM_END,
        additional_special_tokens=[IM_START, *TAG_TOKENS],
        clean_up_tokenization_spaces=False,
        padding_side="left",
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def unknown_words(tokenizer: PreTrainedTokenizerFast, text: str) -> list[str]:
    """Pieces of ``text`` that the tokenizer maps to ``<unk>`` (empty for a covering vocabulary)."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    unk = tokenizer.unk_token_id
    return [text[a:b] for tok, (a, b) in zip(encoding["input_ids"], encoding["offset_mapping"], strict=True) if tok == unk]
