"""Several labelers vote; one label wins by source precedence, with its confidence, the share of
voters that agree, and whether a person should look at it.

Precedence: ``person`` (the filled review queue) > ``file`` > ``rules`` > models (``model``:
a trained model's predictions, ``zero_shot``). Among models the most confident vote wins, and
only at or above ``min_confidence``. A doc goes to the review queue when its voters disagree,
or when its label (or its best, too weak, model vote) has a confidence below ``review_below``;
a person's label is final and never queued. A held-out doc gets no label and no queue entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PRECEDENCE = ("person", "file", "rules", "model", "zero_shot")
MODEL_SOURCES = ("model", "zero_shot")


@dataclass(frozen=True)
class Vote:
    source: str
    label: str
    confidence: float = 1.0


@dataclass(frozen=True)
class Decision:
    label: str | None
    source: str | None
    confidence: float | None
    agreement: float | None
    needs_review: bool


def decide(votes: list[Vote], held_out: bool, min_confidence: float, review_below: float) -> Decision:
    if held_out or not votes:
        return Decision(None, None, None, None, False)
    by_source = {v.source: v for v in votes}
    chosen = None
    for source in ("person", "file", "rules"):
        if source in by_source:
            chosen = by_source[source]
            break
    if chosen is None:
        models = sorted((v for v in votes if v.source in MODEL_SOURCES), key=lambda v: -v.confidence)
        if models and models[0].confidence >= min_confidence:
            chosen = models[0]
    distinct = {v.label for v in votes}
    if chosen is None:
        best = max(v.confidence for v in votes)
        return Decision(None, None, None, None, best < review_below or len(distinct) > 1)
    agreement = sum(v.label == chosen.label for v in votes) / len(votes)
    review = chosen.source != "person" and (len(distinct) > 1 or chosen.confidence < review_below)
    return Decision(chosen.label, chosen.source, float(chosen.confidence), float(agreement), review)


def votes_json(votes: list[Vote]) -> str | None:
    """The votes as a JSON list of {source, label, confidence} in precedence order (None if none)."""
    if not votes:
        return None
    ordered = sorted(votes, key=lambda v: PRECEDENCE.index(v.source))
    return json.dumps([{"source": v.source, "label": v.label, "confidence": round(float(v.confidence), 4)}
                       for v in ordered])


def votes_from_json(text: str | None) -> list[Vote]:
    return [Vote(**v) for v in json.loads(text)] if text else []
