"""Page-level ranking metrics of tools/eval.py (binary relevance) and the Markdown tables of its report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10")
CUTOFF = 10


def dedupe(urls: Iterable[str]) -> list[str]:
    """The URLs in first-seen order without repeats."""
    return list(dict.fromkeys(urls))


def hit_at(ranked: Sequence[str], rel: set[str], k: int) -> float:
    """1.0 when a relevant page is among the first k, else 0.0."""
    return 1.0 if any(u in rel for u in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], rel: set[str], k: int = CUTOFF) -> float:
    """1/rank of the first relevant page within the first k, else 0.0."""
    return next((1.0 / i for i, u in enumerate(ranked[:k], 1) if u in rel), 0.0)


def ndcg_at(ranked: Sequence[str], rel: set[str], k: int = CUTOFF) -> float:
    """Binary-relevance nDCG@k: DCG of the ranking over the DCG of all relevant pages ranked first."""
    dcg = sum(1.0 / math.log2(i + 1) for i, u in enumerate(ranked[:k], 1) if u in rel)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / ideal if ideal else 0.0


def first_rank(ranked: Sequence[str], rel: set[str]) -> int | None:
    """1-based rank of the first relevant page, or None."""
    return next((i for i, u in enumerate(ranked, 1) if u in rel), None)


def score_ranking(ranked: Sequence[str], rel: set[str]) -> dict[str, float]:
    """Every metric of one page ranking (deduplicated first)."""
    ranked = dedupe(ranked)
    return {
        "hit@1": hit_at(ranked, rel, 1),
        "hit@5": hit_at(ranked, rel, 5),
        "hit@10": hit_at(ranked, rel, 10),
        "mrr@10": reciprocal_rank(ranked, rel),
        "ndcg@10": ndcg_at(ranked, rel),
    }


# --- report tables ----------------------------------------------------------------------------------------------


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """The per-mode summary as a Markdown table."""
    head = "| mode | Hit@1 | Hit@5 | Hit@10 | MRR@10 | nDCG@10 | p50 ms | p95 ms |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in summary.items():
        cells = [f"{s[m]:.3f}" for m in METRICS] + [f"{s.get('p50_ms', 0):.1f}", f"{s.get('p95_ms', 0):.1f}"]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kind_table(by_kind: dict[str, dict[str, dict[str, float]]], counts: dict[str, int]) -> str:
    """MRR@10 / Hit@5 of each mode on each kind of question, as a Markdown table."""
    kinds = sorted(counts)
    lines = ["| mode | " + " | ".join(f"{k} (n={counts[k]}) MRR@10 / Hit@5" for k in kinds) + " |"]
    lines.append("|---|" + "---:|" * len(kinds))
    for mode, per_kind in by_kind.items():
        cells = [f"{per_kind[k]['mrr@10']:.3f} / {per_kind[k]['hit@5']:.3f}" for k in kinds]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
