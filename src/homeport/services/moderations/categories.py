"""OpenAI's thirteen moderation categories, scored from two signals.

1. The toxicity network (backends/toxicity.py) scores toxic, insult, threat and identity_hate:
   the signal for harassment and hate, and part of violence.
2. The embedding model's similarity to each category's sentences (exemplars.py), less its
   similarity to everyday sentences and to the categories it is most often confused with (a
   threat against someone is not self-harm; "how to" questions are not all illicit), through a
   logistic curve: the signal for hate, violence, self-harm, sexual and illicit.

A category is flagged at a score of 0.5. bench/moderation_quality.py measures each category's
precision and recall on a labelled set; docs/moderations.md reports them and names the weak ones.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CATEGORIES", "THRESHOLD", "score"]

CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors",
    "violence", "violence/graphic",
)  # fmt: skip
"""In the order of OpenAI's `categories` object."""

THRESHOLD = 0.5

_TOPIC = {
    "hate": "hate", "violence": "violence", "violence/graphic": "violence", "illicit/violent": "illicit",
    "illicit": "illicit", "self-harm": "self-harm", "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm", "sexual": "sexual", "sexual/minors": "sexual",
}  # fmt: skip
"""The topic each exemplar set belongs to."""

_RIVALS = {
    "violence": ("self-harm", "sexual"),
    "self-harm": ("violence", "sexual", "illicit"),
    "sexual": ("violence", "self-harm", "illicit"),
    "illicit": ("self-harm", "sexual"),
    "hate": (),
}
"""Topics whose similarity a topic's score is measured against (besides everyday sentences)."""

_MARGIN, _SLOPE = 0.10, 25.0
"""A margin of 0.10 in cosine similarity over the nearest rival scores 0.5; 0.18 scores 0.88."""


def score(labels: np.ndarray, similarity: dict[str, np.ndarray], benign: np.ndarray) -> dict[str, np.ndarray]:
    """Per category, one score per input.

    `labels`: (n, 6) toxicity scores in backends.toxicity.LABELS order; `similarity`: per exemplar
    set, (n,) best cosine similarity; `benign`: (n,) best similarity to everyday sentences."""
    toxic, _, _, threat, insult, identity_hate = labels.T
    topic: dict[str, np.ndarray] = {}
    for name, sims in similarity.items():
        t = _TOPIC[name]
        topic[t] = np.maximum(topic[t], sims) if t in topic else sims

    def semantic(name: str) -> np.ndarray:
        rival = np.max(np.stack([benign, *(topic[r] for r in _RIVALS[_TOPIC[name]])]), axis=0)
        return 1.0 / (1.0 + np.exp(-(similarity[name] - rival - _MARGIN) * _SLOPE))

    s = {name: semantic(name) for name in similarity}
    violence = np.maximum.reduce(
        [np.minimum(3 * threat, 1.0), s["violence"], s["violence/graphic"], s["illicit/violent"]]
    )
    harassment = np.minimum(insult, toxic)
    hate = np.maximum(identity_hate, s["hate"])
    self_harm = np.maximum.reduce([s["self-harm"], s["self-harm/intent"], s["self-harm/instructions"]])
    scores = {
        "harassment": harassment,
        "harassment/threatening": np.minimum(np.maximum(insult, toxic), violence),
        "hate": hate,
        "hate/threatening": np.minimum(hate, violence),
        "illicit": np.maximum(s["illicit"], s["illicit/violent"]),
        "illicit/violent": s["illicit/violent"],
        "self-harm": self_harm,
        "self-harm/intent": np.minimum(s["self-harm/intent"], self_harm),
        "self-harm/instructions": np.minimum(s["self-harm/instructions"], self_harm),
        "sexual": np.maximum(s["sexual"], s["sexual/minors"]),
        "sexual/minors": s["sexual/minors"],
        "violence": violence,
        "violence/graphic": s["violence/graphic"],
    }
    return {c: scores[c] for c in CATEGORIES}
