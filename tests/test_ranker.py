"""The learned ranker: the shipped weights fit the feature set, re-ranking keeps exact look-ups and
well-formed scores, and the training procedure learns an obvious signal."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from knowledge import ranker
from knowledge.retrieve import RetrievalSettings, retrieve

ON = RetrievalSettings(learned_ranker=True)

ROOT = Path(__file__).resolve().parent.parent


def _train_module():
    spec = importlib.util.spec_from_file_location("train_ranker", ROOT / "bench" / "train_ranker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_weights_match_the_features():
    model = ranker.load_model()
    assert model is not None
    assert model.weights.shape == model.mean.shape == model.scale.shape == (len(ranker.FEATURES),)
    assert np.all(model.scale > 0)


def test_weights_for_another_feature_set_are_ignored():
    raw = json.loads((ROOT / "knowledge" / ranker.WEIGHTS_FILE).read_text(encoding="utf-8"))
    assert ranker.parse_model(raw) is not None
    raw["features"] = raw["features"][:-1]
    assert ranker.parse_model(raw) is None


def test_features_are_finite_one_row_per_candidate(bundled_kb):
    settings = RetrievalSettings(keep_features=True, ranker_candidates=12)
    r = retrieve(bundled_kb.index, "老板让签协议说出了事自己负责，这算数吗", k=10, settings=settings)
    x = r.signals["features"]
    assert x.shape == (len(r.signals["pool"]), len(ranker.FEATURES)) and len(r.signals["pool"]) <= 12
    assert np.isfinite(x).all()
    cov = x[:, ranker.FEATURES.index("cov")]
    assert ((0 <= cov) & (cov <= 1)).all()


def test_learned_scores_are_relative_and_descending(bundled_kb):
    hits = retrieve(bundled_kb.index, "厂里的叉车多久要检验一次", settings=ON).hits
    scores = [h.score for h in hits]
    assert scores[0] == 1.0 and all(0 < s <= 1 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_exact_article_look_up_stays_first(bundled_kb):
    hits = retrieve(bundled_kb.index, "安全生产法第二十一条讲的什么", settings=ON).hits
    assert hits[0].exact and hits[0].chunk.article == "第二十一条"


def test_default_keeps_the_fused_order(bundled_kb):
    hits = retrieve(bundled_kb.index, "厂里的叉车多久要检验一次").hits  # the default: fused order
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_training_learns_an_obvious_signal():
    train = _train_module()
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        x = rng.normal(size=(8, 3))
        y = np.zeros(8, dtype=bool)
        y[rng.integers(8)] = True
        x[y, 1] += 3.0  # feature 1 marks the gold passage
        rows.append({"x": x, "y": y, "n_exact": 0, "exact_rank": None})
    model = train.fit(rows, l2=0.01, steps=300)
    assert int(np.argmax(np.abs(model["weights"]))) == 1 and model["weights"][1] > 0
    ranks = [train.rank_of(r, train.scores(model, r)) for r in rows]
    assert train.metrics(ranks)[0] > 0.9
