"""Learned re-ranking of the fused candidates.

The hand-tuned fusion (0.6 normalised BM25 + 0.4 normalised dense, times a few relative bonuses) is
one fixed formula; the signals it mixes - and a few it ignores, such as how much of the question a
passage covers weighted by rarity - say different things for different questions. A linear model
over per-candidate features, fitted with a listwise (softmax) loss on the gold passages of the
tuning question sets, re-orders the best `candidates` passages of the fusion. Weights and the
feature standardisation live in ranker_weights.json, written by bench/train_ranker.py; without that
file retrieval keeps the fused order. It is used only when RetrievalSettings.learned_ranker is set,
which is off by default: cross-validated it gained noise-level 0.02 on held-out 1-3 and lost 0.05
hit@1 on held-out 4 (docs/benchmarks.md).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np


WEIGHTS_FILE = "ranker_weights.json"

FEATURES: tuple[str, ...] = (
    "lex_own",  # BM25 of the question's own tokens / best such score
    "lex_exp",  # BM25 of the vocabulary expansion / best such score
    "lex_log",  # log(1 + raw BM25 of own tokens): how strong the match is in absolute terms
    "dense",  # min-max normalised cosine among the dense candidates (0 outside them)
    "dense_gap",  # cosine minus the best cosine (0 outside: treated as far)
    "in_dense",  # among the dense candidates at all
    "lex_rr",  # 1 / BM25 rank
    "dense_rr",  # 1 / dense rank
    "fused",  # hand-tuned fused score / best fused score
    "fused_rr",  # 1 / fused rank
    "type_match",  # the question asks for a kind of answer (time, fine ...) and the passage states one
    "type_miss",  # it asks for one and the passage states none
    "liab_noask",  # 法律责任 article, question does not ask about sanctions
    "liab_ask",  # 法律责任 article, question asks about sanctions
    "named_law",  # chunk of the law the question names
    "cov",  # share of the question's distinct tokens found in the passage
    "idf_cov",  # the same, weighted by inverse document frequency
    "exp_cov",  # share of expansion tokens found in the passage
    "speech",  # the passage is from a speech / plan (outline document)
    "speech_cue",  # speech passage and the question refers to meetings, leaders or local campaigns
    "log_len",  # log of passage length
    "doc_share",  # share of the fused top 10 from the same document
    "split_part",  # a later piece of an article split in parts
    "general",  # 总则 / 附则 chapter: purpose clauses match everything a little
    "title_cov",  # share of the question's distinct tokens found in the document title and headings
    "phrase_cov",  # share of the vocabulary's legal phrases (before segmentation) found verbatim
    "tri_cov",  # share of the question's character trigrams found verbatim: longer shared wording
    "doc_lex",  # best own-token BM25 of any passage of the same document / best overall: is it the right law?
    "doc_exp",  # the same for the expansion tokens
    "doc_dense",  # best cosine of any passage of the same document minus the best overall
    "sent_cov",  # best idf-weighted coverage of the question by one sentence: the answer is usually one
    "lead_cov",  # idf-weighted coverage by the passage's first 40 characters: who the article is about
)

# A question about what was said or decided locally (a meeting, a leader, a campaign) rather than
# about what a law says.
SPEECH_CUE_RE = re.compile(
    r"讲话|会上|会议|开会|领导|市长|县长|区长|书记|镇长|市里|县里|区里|镇里|全市|全县|全区|我们市|我们县|我们区"
    r"|部署|专项行动|专项整治|行动|工作|提出|要求|强调|口号|提法|今年|去年|明年|春节|冬春|节前|节日"
)
GENERAL_HEADING_RE = re.compile(r"总则|附则")
_CJK_RUN_RE = re.compile(r"[\u4e00-\u9fff]{3,}")
_SENTENCE_RE = re.compile(r"[^。；\n]+")


def _idf_share(text: str, idf: dict[str, float], total: float) -> float:
    """Share of the question's idf mass whose tokens occur (as substrings) in the text."""
    return sum(w for t, w in idf.items() if t in text) / total


@dataclass(frozen=True)
class RankerModel:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    candidates: int  # pool size the model was trained on (informative)

    def score(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights


@cache
def load_model() -> RankerModel | None:
    try:
        raw = json.loads(resources.files(__package__ or "knowledge").joinpath(WEIGHTS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return parse_model(raw)


def parse_model(raw: dict) -> RankerModel | None:
    """The model in a weights file, or None when it was trained on another feature set (unusable)."""
    if tuple(raw.get("features", ())) != FEATURES:
        return None
    return RankerModel(
        FEATURES,
        np.asarray(raw["mean"], dtype=np.float64),
        np.asarray(raw["scale"], dtype=np.float64),
        np.asarray(raw["weights"], dtype=np.float64),
        int(raw.get("candidates", 30)),
    )


class TokenStats:
    """Token sets of every passage and document frequencies, built once per lexical index."""

    def __init__(self, index) -> None:
        seg = index.segmenter
        self.sets = [frozenset(seg.tokens(c.text)) for c in index.chunks]
        df: dict[str, int] = {}
        for s in self.sets:
            for t in s:
                df[t] = df.get(t, 0) + 1
        self.n = max(len(self.sets), 1)
        self.df = df
        titles = sorted({c.doc_title for c in index.chunks})
        self.doc_of = np.array([titles.index(c.doc_title) for c in index.chunks], dtype=np.int64)
        self.n_docs = len(titles)

    def doc_max(self, values: np.ndarray) -> np.ndarray:
        """Per-document maximum of a per-passage array."""
        out = np.full(self.n_docs, -np.inf)
        np.maximum.at(out, self.doc_of, values)
        return out

    def idf(self, token: str) -> float:
        return math.log(1.0 + self.n / (1.0 + self.df.get(token, 0)))


def token_stats(index) -> TokenStats:
    stats = index.__dict__.get("_token_stats")
    if stats is None or stats[0] is not index.lexical:
        stats = (index.lexical, TokenStats(index))
        index.__dict__["_token_stats"] = stats
    return stats[1]


def features(
    index,
    question: str,
    tokens: list[str],
    expansion: list[str],
    phrases: list[str],
    positions: list[int],
    own: np.ndarray,
    expanded: np.ndarray | None,
    dense_ranked: list[tuple[int, float]],
    fused: np.ndarray,
    wanted: list[re.Pattern[str]],
    liability_asked: bool,
    named: np.ndarray | None,
    liability_heading: re.Pattern[str],
) -> np.ndarray:
    """One row of FEATURES per candidate position (positions are in fused order)."""
    stats = token_stats(index)
    q = set(tokens)
    idf = {t: stats.idf(t) for t in q}
    idf_total = sum(idf.values()) or 1.0
    e = set(expansion)
    own_top = float(own.max()) if own.size and own.max() > 0 else 1.0
    exp_top = float(expanded.max()) if expanded is not None and expanded.size and expanded.max() > 0 else 1.0
    fused_top = float(fused[positions[0]]) if positions and fused[positions[0]] > 0 else 1.0
    dense = {p: s for p, s in dense_ranked}
    dense_rank = {p: r for r, (p, _) in enumerate(dense_ranked, start=1)}
    sims = [s for _, s in dense_ranked]
    lo, hi = (min(sims), max(sims)) if sims else (0.0, 1.0)
    lex_order = np.argsort(-own, kind="stable")
    lex_rank = np.empty(own.size, dtype=np.int64)
    lex_rank[lex_order] = np.arange(1, own.size + 1)
    head_docs = [index.chunks[p].doc_title for p in positions[:10]]
    speech_cue = SPEECH_CUE_RE.search(question) is not None
    phrase_set = set(phrases)
    trigrams = {run[i : i + 3] for run in _CJK_RUN_RE.findall(question) for i in range(len(run) - 2)}
    heads = {(index.chunks[p].doc_title, index.chunks[p].heading_path): " ".join((index.chunks[p].doc_title, *index.chunks[p].heading_path))
             for p in positions}
    doc_own = stats.doc_max(own) / own_top
    doc_exp = stats.doc_max(expanded) / exp_top if expanded is not None else np.zeros(stats.n_docs)
    dense_all = np.full(own.size, lo - 0.1)
    if dense_ranked:
        dense_all[[p for p, _ in dense_ranked]] = sims
    doc_dense = stats.doc_max(dense_all) - hi
    rows = np.zeros((len(positions), len(FEATURES)), dtype=np.float64)
    for i, p in enumerate(positions):
        c = index.chunks[p]
        tok = stats.sets[p]
        is_liab = any(liability_heading.search(h) for h in c.heading_path)
        states = bool(wanted) and any(w.search(c.text) for w in wanted)
        speech = c.article is None  # laws are split by article; speeches and plans are not
        sim = dense.get(p)
        rows[i] = (
            own[p] / own_top,
            (expanded[p] / exp_top) if expanded is not None else 0.0,
            math.log1p(float(own[p])),
            ((sim - lo) / (hi - lo + 1e-9)) if sim is not None else 0.0,
            (sim - hi) if sim is not None else -0.1,
            1.0 if sim is not None else 0.0,
            1.0 / lex_rank[p] if own[p] > 0 else 0.0,
            1.0 / dense_rank[p] if p in dense_rank else 0.0,
            fused[p] / fused_top,
            1.0 / (i + 1),
            1.0 if states else 0.0,
            1.0 if wanted and not states else 0.0,
            1.0 if is_liab and not liability_asked else 0.0,
            1.0 if is_liab and liability_asked else 0.0,
            1.0 if named is not None and named[p] else 0.0,
            (len(q & tok) / len(q)) if q else 0.0,
            sum(idf[t] for t in q & tok) / idf_total,
            (len(e & tok) / len(e)) if e else 0.0,
            1.0 if speech else 0.0,
            1.0 if speech and speech_cue else 0.0,
            math.log(len(c.text) + 1),
            head_docs.count(c.doc_title) / max(len(head_docs), 1),
            1.0 if c.part > 0 else 0.0,
            1.0 if any(GENERAL_HEADING_RE.search(h) for h in c.heading_path) else 0.0,
            (sum(1 for t in q if t in heads[c.doc_title, c.heading_path]) / len(q)) if q else 0.0,
            (sum(1 for ph in phrase_set if ph in c.text) / len(phrase_set)) if phrase_set else 0.0,
            (sum(1 for g in trigrams if g in c.text) / len(trigrams)) if trigrams else 0.0,
            doc_own[stats.doc_of[p]],
            doc_exp[stats.doc_of[p]],
            doc_dense[stats.doc_of[p]],
            max((_idf_share(sent, idf, idf_total) for sent in _SENTENCE_RE.findall(c.text)), default=0.0),
            _idf_share(c.text[:40], idf, idf_total),
        )
    return rows
