"""Character and word error rates of OCR text against ground truth, as the corpus README defines them.

Both texts are NFC-normalised and every run of whitespace (newlines included) becomes one space, so only
the reading order of the words matters, not the line layout. CER = character edit distance / ground-truth
characters; WER = word edit distance / ground-truth words. A blank page's ground truth is empty: any text
found on it is counted as errors (its rates are reported as the number of invented characters/words).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFC, whitespace collapsed to single spaces, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


@dataclass(frozen=True)
class Score:
    """Edit counts of one page (or a sum of pages)."""

    char_errors: int
    """Character-level Levenshtein distance."""

    chars: int
    """Characters in the ground truth."""

    word_errors: int
    """Word-level Levenshtein distance."""

    words: int
    """Words in the ground truth."""

    @property
    def cer(self) -> float:
        """Character error rate (errors per ground-truth character; errors themselves if the truth is empty)."""
        return self.char_errors / self.chars if self.chars else float(self.char_errors)

    @property
    def wer(self) -> float:
        """Word error rate (errors per ground-truth word; errors themselves if the truth is empty)."""
        return self.word_errors / self.words if self.words else float(self.word_errors)

    def __add__(self, other: Score) -> Score:
        return Score(self.char_errors + other.char_errors, self.chars + other.chars,
                     self.word_errors + other.word_errors, self.words + other.words)


ZERO = Score(0, 0, 0, 0)


def score(hypothesis: str, truth: str) -> Score:
    """Edit distances of ``hypothesis`` against ``truth`` after normalisation."""
    hyp, ref = normalize(hypothesis), normalize(truth)
    hw, rw = hyp.split(), ref.split()
    return Score(Levenshtein.distance(hyp, ref), len(ref), Levenshtein.distance(hw, rw), len(rw))


def refused(truth: str) -> Score:
    """Score of a page whose file was refused: every ground-truth character and word is an error."""
    ref = normalize(truth)
    return Score(len(ref), len(ref), len(ref.split()), len(ref.split()))


def total(scores: list[Score]) -> Score:
    """Sum of page scores (overall CER/WER weighted by ground-truth length)."""
    out = ZERO
    for s in scores:
        out = out + s
    return out
