"""Tokenizing long prompts that hold many special tokens, in time linear in their length.

llama.cpp first splits a prompt at its special tokens (`<|im_start|>`, `<|eot_id|>`, ...): for
each special token it scans the list of text fragments, and for each match it walks that linked
list again from its head. One call therefore costs the square of the number of special tokens in
the text: a conversation of 5,000 one-word turns took 1.4 s to tokenize, 20,000 turns 11.8 s and
50,000 a minute, while 400,000 words without special tokens take 1.4 s.

`SpecialPieces` cuts such a text into pieces of about `per_piece` special tokens, each cut just
before a special token, and llama.cpp tokenizes each piece in its own call; the ids are the same as
for the whole text. A cut is made only where llama.cpp's own split is sure to cut as well:
- no special token's text spans the cut;
- none starts inside the special token that begins at the cut (llama.cpp matches the longest
  special tokens first, so such a token could take the cut's place);
- the cut's token does not strip the whitespace before it (`lstrip`), unless there is none there;
- the text at the cut is not whitespace (a token that strips the whitespace after it, `rstrip`,
  would reach across).
Across a cut every tokenizer type starts afresh as it does after any special token (SentencePiece
adds its space prefix after a special token either way), so each piece tokenizes alone as it does
inside the whole text; tests/unit/test_tokenizing.py holds the two equal over generated texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["SpecialPieces"]

_WHITESPACE = b" \t\n\r\x0b\x0c"


class SpecialPieces:
    def __init__(self, specials: dict[bytes, bool], *, per_piece: int = 16, shortest: int = 16_384) -> None:
        """`specials`: each special token's text → whether it strips the whitespace before it."""
        self._specials = {text: lstrip for text, lstrip in specials.items() if text}
        self._texts = sorted(self._specials, key=len, reverse=True)
        # Longest first, as llama.cpp matches them: at each position the longest special token wins.
        self._pattern = re.compile(b"|".join(re.escape(t) for t in self._texts)) if self._texts else None
        self._per_piece, self._shortest = per_piece, shortest

    def tokenize(self, data: bytes, tokenize: Callable[[bytes], list[int]]) -> list[int]:
        """`tokenize(piece)` is llama.cpp's own call (special tokens parsed) for one piece."""
        pieces = self.pieces(data)
        if len(pieces) == 1:
            return tokenize(data)
        ids: list[int] = []
        for piece in pieces:
            ids += tokenize(piece)
        return ids

    def pieces(self, data: bytes) -> list[bytes]:
        if self._pattern is None or len(data) < self._shortest:
            return [data]
        cuts, since = [0], 0
        for match in self._pattern.finditer(data):
            since += 1
            if since > self._per_piece and match.start() and self._can_cut(data, match.start(), match.end()):
                cuts.append(match.start())
                since = 1
        cuts.append(len(data))
        return [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]

    def _can_cut(self, data: bytes, start: int, end: int) -> bool:
        if data[start] in _WHITESPACE:
            return False
        if data[start - 1] in _WHITESPACE and self._specials[data[start:end]]:  # start > 0: never cut at 0
            return False
        for text in self._texts:
            n = len(text)
            found = data.find(text, max(0, start - n + 1), start + n - 1)
            if found != -1 and found < start:  # it spans the cut
                return False
            if n >= end - start:  # matched before the cut's token: it must not overlap it
                found = data.find(text, start + 1, end - 1 + n)
                if found != -1 and found < end:
                    return False
        return True
