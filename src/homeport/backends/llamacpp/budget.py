"""Keeping a constrained sequence closable within its max_tokens (backends/closing.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..closing import Closer

__all__ = ["ClosingBudget"]


class ClosingBudget:
    """Holds the invariant *tokens produced + tokens of the output's closing ≤ max_tokens*: each
    sampled token is admitted only if the output stays closable in the tokens left; when one is
    not, the engine writes `tokens()`, the closing of the output before it, and stops."""

    def __init__(self, closer: Closer, tokenize: Callable[[str], list[int] | None], max_tokens: int) -> None:
        self._closer, self._tokenize, self._max = closer, tokenize, max_tokens
        self._text = closer.closing()  # the closing of the output so far (None: unknown)
        self._tokens: list[int] | None = None  # its tokens, once counted

    def cost(self) -> int | None:
        """Tokens the closing of the output so far takes (at the start: the shortest valid output)."""
        if self._text is None:
            return None
        tokens = self.tokens()
        return len(tokens) if tokens or not self._text else None

    def admits(self, piece: bytes, produced: int) -> bool:
        """Follow a sampled token's bytes (`produced` tokens with it); False if the output could not
        be closed in the tokens left with it."""
        before = self._text, self._tokens
        self._closer.feed(piece)
        text = self._closer.closing()
        self._text, self._tokens = text, None
        room = self._max - produced
        if text is None or len(text.encode()) <= room:  # unknown, or fits even at one byte a token
            return True
        self._tokens = self._tokenize(text)
        if self._tokens is not None and len(self._tokens) <= room:
            return True
        self._text, self._tokens = before
        return False

    def tokens(self) -> list[int]:
        """The closing's tokens ([] when the output is complete, or its closing unknown)."""
        if not self._text:
            return []
        if self._tokens is None:
            self._tokens = self._tokenize(self._text) or []
        return self._tokens
