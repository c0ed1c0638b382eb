"""Word error rate, the measure tests use to judge a transcript against what was said."""

from __future__ import annotations

import re

import jiwer


def normalized(text: str) -> str:
    """Lower-case words without punctuation: "Hello, world." and "hello world" are the same."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def word_error_rate(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalized(reference), normalized(hypothesis)))
