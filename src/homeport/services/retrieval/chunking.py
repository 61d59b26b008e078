"""Splitting text into chunks of at most N tokens with M tokens of overlap, in real tokens.

Text is cut into pieces at whitespace (`word` + its trailing space); the embedding model's
tokenizer counts each piece's tokens in one batch call, and pieces are packed into chunks.
Word-piece tokenizers split at whitespace first, so a piece's count in isolation is its count
in context. A piece longer than a whole chunk (a long URL, a base64 blob) is cut by characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_text", "AUTO", "check_static", "MAX_FILE_TOKENS", "TooManyTokens"]

AUTO = (400, 200)
"""`auto` chunking: (max tokens, overlap). OpenAI uses 800/400; 400 fits the default embedding
model's 512-token window, so every token of a chunk is embedded."""

_PIECE = re.compile(r"\S+\s*|\s+")


MAX_FILE_TOKENS = 5_000_000
"""OpenAI's limit on one file's tokens in file search. It bounds the work one file can ask for: at
about 20 chunks a second, 5 million tokens in 400/200 chunks take 20 minutes on 2 cores."""


class TooManyTokens(Exception):
    def __init__(self, tokens: int) -> None:
        super().__init__(f"The file holds {tokens:,} tokens; file search reads at most {MAX_FILE_TOKENS:,} from "
                         "one file.")  # fmt: skip


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int


def check_static(max_tokens: int, overlap: int) -> str | None:
    """OpenAI's rules for a static strategy; the problem, or None."""
    if not 100 <= max_tokens <= 4096:
        return "max_chunk_size_tokens must be between 100 and 4096."
    if overlap < 0 or overlap > max_tokens // 2:
        return "chunk_overlap_tokens must be non-negative and at most half of max_chunk_size_tokens."
    return None


def chunk_text(
    text: str, tokenize: Callable[[list[str]], list[list[int]]], max_tokens: int, overlap: int
) -> list[Chunk]:
    pieces = _PIECE.findall(text)
    if not pieces:
        return []
    distinct = list(dict.fromkeys(pieces))  # a long text repeats its words: each is counted once
    count_of = dict(zip(distinct, (len(ids) for ids in tokenize(distinct)), strict=True))
    counts = [count_of[piece] for piece in pieces]
    if (total := sum(counts)) > MAX_FILE_TOKENS:
        raise TooManyTokens(total)
    pieces, counts = _split_long(pieces, counts, max_tokens, tokenize)
    chunks: list[Chunk] = []
    start = 0
    while start < len(pieces):
        end, tokens = start, 0
        while end < len(pieces) and tokens + counts[end] <= max_tokens:
            tokens += counts[end]
            end += 1
        end = max(end, start + 1)
        body = "".join(pieces[start:end]).strip()
        if body:
            chunks.append(Chunk(body, sum(counts[start:end])))
        if end >= len(pieces):
            break
        # Step back over up to `overlap` tokens for the next chunk, but always move forward.
        back, carried = end, 0
        while back > start + 1 and carried + counts[back - 1] <= overlap:
            back -= 1
            carried += counts[back]
        start = back
    return chunks


def _split_long(
    pieces: list[str], counts: list[int], max_tokens: int, tokenize: Callable[[list[str]], list[list[int]]]
) -> tuple[list[str], list[int]]:
    if all(c <= max_tokens for c in counts):
        return pieces, counts
    out_pieces, out_counts = [], []
    for piece, count in zip(pieces, counts, strict=True):
        if count <= max_tokens:
            out_pieces.append(piece)
            out_counts.append(count)
            continue
        step = max(1, len(piece) * max_tokens // (2 * count))  # about half a chunk of characters
        parts = [piece[i : i + step] for i in range(0, len(piece), step)]
        out_pieces += parts
        out_counts += [len(ids) for ids in tokenize(parts)]
    return out_pieces, out_counts
