"""Reciprocal-rank fusion of ranked candidate lists (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp_web_ingest.models import LegRank


@dataclass(frozen=True)
class Fused:
    """A candidate after fusion: its fused score and what each leg said of it."""

    chunk_id: int
    score: float
    legs: tuple[LegRank, ...]


def reciprocal_rank_fusion(
    legs: Mapping[str, Sequence[tuple[int, float]]],
    weights: Mapping[str, float] | None = None,
    k: int = 60,
) -> list[Fused]:
    """Fuse best-first (id, score) lists: score = sum over legs of weight / (k + rank); ties keep first-seen order."""
    weights = weights or {}
    scores: dict[int, float] = {}
    seen: dict[int, list[LegRank]] = {}
    for leg, candidates in legs.items():
        weight = weights.get(leg, 1.0)
        ranked: set[int] = set()
        for rank, (chunk_id, raw) in enumerate(candidates, start=1):
            if chunk_id in ranked:  # a leg may only vote once per candidate
                continue
            ranked.add(chunk_id)
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
            seen.setdefault(chunk_id, []).append(LegRank(leg, rank, raw))
    order = sorted(scores, key=lambda cid: -scores[cid])  # stable: first-seen wins ties
    return [Fused(cid, scores[cid], tuple(seen[cid])) for cid in order]


def trim_text(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters at a word boundary, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"


def share_budget(lengths: Sequence[int], budget: int, minimum: int = 200) -> list[int]:
    """Character allowances for results in rank order: short texts keep all, the rest share what is left evenly."""
    allowances = [0] * len(lengths)
    remaining = budget
    pending = sorted(range(len(lengths)), key=lambda i: lengths[i])
    while pending:
        fair = max(minimum, remaining // len(pending))
        i = pending.pop(0)
        allowances[i] = min(lengths[i], fair)
        remaining = max(0, remaining - allowances[i])
    return allowances
