"""Incremental detokenisation: text pieces that concatenate to exactly the final answer.

The final answer is ``tokenizer.decode(ids).strip()``. Pieces are cut from that same string as
the ids grow, holding back what could still change: leading and trailing whitespace (stripped
at the end, or kept once text follows) and a trailing U+FFFD (an incomplete UTF-8 character
from byte-fallback tokens, completed by the next token).
"""

from __future__ import annotations

from osprey.text.tokenizer import TextTokenizer

INCOMPLETE = "\ufffd"


class TextStream:
    """One answer's growing ids -> new text pieces."""

    def __init__(self, tokenizer: TextTokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now certain (may be empty)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids).strip()
        if text.endswith(INCOMPLETE):
            return ""
        return self._advance(text)

    def finish(self) -> str:
        """The rest of the answer, once no token will follow."""
        return self._advance(self.text)

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids).strip()

    def _advance(self, text: str) -> str:
        if not text.startswith(self.emitted):
            # Decoding changed text already sent (not seen with SentencePiece or byte-level BPE):
            # send nothing now; the caller's final answer is still the full decode.
            return ""
        piece = text[len(self.emitted):]
        self.emitted = text
        return piece
