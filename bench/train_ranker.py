"""Fit the learned ranker (knowledge/ranker.py) on the tuning question sets and cross-validate it.

For every answerable question the fused candidates and their features are computed with the
project's own retrieval (learned ranker off); a candidate is positive when it contains a gold
snippet (shared/eval/README.md rule). A linear model is fitted with a listwise softmax loss and L2.
Cross-validation leaves one question set out at a time and compares hit@1/hit@5/MRR@10 of the fused
order against the learned order on the left-out set. The final model is fitted on all sets and
written to knowledge/ranker_weights.json. Held-out 4 is never used here.

    python bench/train_ranker.py [--l2 0.01] [--no-write] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from retrieval import norm  # noqa: E402

SETS = {
    "dev": ROOT.parent / "shared" / "eval" / "dev_questions.jsonl",
    "h1": ROOT / "bench" / "heldout_questions.jsonl",
    "h2": ROOT / "bench" / "heldout2_questions.jsonl",
    "h3": ROOT / "bench" / "heldout3_questions.jsonl",
}
WEIGHTS = ROOT / "knowledge" / "ranker_weights.json"


def collect(kb, questions: list[dict], candidates: int) -> list[dict]:
    from knowledge.answer import decline_reason
    from knowledge.retrieve import retrieve

    settings = dataclasses.replace(kb.retrieval_settings, learned_ranker=False, keep_features=True,
                                   ranker_candidates=candidates)
    rows = []
    for q in questions:
        r = retrieve(kb.index, q["question"], k=10, settings=settings)
        subs = [norm(g["substring"]) for g in q["gold"]]
        gold = lambda text: any(s in norm(text) for s in subs)  # noqa: E731
        exact = [h for h in r.hits if h.exact]
        exact_rank = next((i for i, h in enumerate(exact, 1) if gold(h.chunk.text)), None)
        pool = r.signals["pool"]
        labels = np.array([gold(kb.index.chunks[p].text) for p in pool], dtype=bool)
        reason = decline_reason(r, kb.style) or ""
        rows.append({"id": q["id"], "x": r.signals["features"], "y": labels, "n_exact": len(exact), "exact_rank": exact_rank,
                     "unanswerable": q["kind"] == "unanswerable", "rule_refusal": bool(reason) and not reason.startswith("weak"),
                     "refused": bool(reason), "top_dense": r.top_dense, "topic_margin": r.topic_margin,
                     "top_lexical": r.top_lexical})
    return rows


def rank_of(row: dict, scores: np.ndarray | None) -> int | None:
    if row["exact_rank"]:
        return row["exact_rank"]
    order = np.arange(len(row["y"])) if scores is None else np.argsort(-scores, kind="stable")
    for i, j in enumerate(order, start=1):
        if row["y"][j]:
            r = row["n_exact"] + i
            return r if r <= 10 else None
    return None


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = max(len(ranks), 1)
    return (sum(1 for r in ranks if r and r <= 1) / n, sum(1 for r in ranks if r and r <= 5) / n,
            sum(1 / r for r in ranks if r) / n)


def fit(rows: list[dict], l2: float, steps: int = 1500, lr: float = 0.05) -> dict:
    train = [r for r in rows if r["y"].any() and len(r["y"]) > 1]
    allx = np.vstack([r["x"] for r in train])
    mean, scale = allx.mean(0), allx.std(0) + 1e-6
    xs = [(r["x"] - mean) / scale for r in train]
    ys = [r["y"].astype(float) for r in train]
    w = np.zeros(allx.shape[1])
    m = np.zeros_like(w); v = np.zeros_like(w)
    for t in range(1, steps + 1):
        grad = l2 * w * len(train)
        for x, y in zip(xs, ys):
            s = x @ w
            p = np.exp(s - s.max()); p /= p.sum()
            q = p * y; q /= q.sum()  # posterior over the positives
            grad += x.T @ (p - q)
        grad /= len(train)
        m = 0.9 * m + 0.1 * grad; v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return {"mean": mean, "scale": scale, "weights": w}


def scores(model: dict, row: dict) -> np.ndarray:
    return ((row["x"] - model["mean"]) / model["scale"]) @ model["weights"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache", default=None, help="pickle of the collected features (reused when present)")
    args = parser.parse_args()

    from bot.app import build_knowledge, ensure_library
    from bot.config import Config
    from knowledge.ranker import FEATURES

    config = Config()
    tmp = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="safeduty-ranker-"))
    kb = build_knowledge(config, tmp)
    ensure_library(config, kb, tmp)
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        import pickle
        data = pickle.loads(cache.read_bytes())
    else:
        data = None
    data = data or {name: collect(kb, [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()],
                          args.candidates)
            for name, path in SETS.items()}
    if cache and not cache.exists():
        import pickle
        cache.write_bytes(pickle.dumps(data))
    answerable = {name: [r for r in rows if not r["unanswerable"]] for name, rows in data.items()}
    data, everything = answerable, data
    recall = [r["y"].any() or bool(r["exact_rank"]) for rows in data.values() for r in rows]
    print(f"candidates {args.candidates}: gold in pool for {sum(recall)}/{len(recall)} answerable questions")
    print(f"{'left out':<10}{'fused h@1':>10}{'h@5':>7}{'MRR':>7}{'learned h@1':>13}{'h@5':>7}{'MRR':>7}")
    unseen_base, unseen_new = [], []
    for name in SETS:
        model = fit([r for other, rows in data.items() if other != name for r in rows], args.l2)
        base = [rank_of(r, None) for r in data[name]]
        new = [rank_of(r, scores(model, r)) for r in data[name]]
        if name != "dev":
            unseen_base += base; unseen_new += new
        print(f"{name:<10}" + "".join(f"{v:>7.3f}" if i else f"{v:>10.3f}" for i, v in enumerate(metrics(base)))
              + "".join(f"{v:>7.3f}" if i else f"{v:>13.3f}" for i, v in enumerate(metrics(new))))
    print(f"{'h1-h3':<10}" + "".join(f"{v:>7.3f}" if i else f"{v:>10.3f}" for i, v in enumerate(metrics(unseen_base)))
          + "".join(f"{v:>7.3f}" if i else f"{v:>13.3f}" for i, v in enumerate(metrics(unseen_new))))
    final = fit([r for rows in data.values() for r in rows], args.l2)
    for name, w in sorted(zip(FEATURES, final["weights"]), key=lambda t: -abs(t[1])):
        print(f"  {name:<12}{w:+.3f}")
    if not args.no_write:
        WEIGHTS.write_text(json.dumps({
            "features": list(FEATURES), "candidates": args.candidates, "l2": args.l2,
            "trained_on": sorted(SETS), "mean": final["mean"].round(6).tolist(),
            "scale": final["scale"].round(6).tolist(), "weights": final["weights"].round(6).tolist(),
        }, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {WEIGHTS}")


if __name__ == "__main__":
    main()
