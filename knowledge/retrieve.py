"""Retrieval: exact article look-up when a law and an article are named, otherwise hybrid
BM25 + dense retrieval fused by reciprocal rank, with the domain vocabulary bridging chat words
and the words of the law. Retrieval knows nothing of answers or chats.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from knowledge import ranker, vocabulary
from knowledge.index import KnowledgeIndex
from knowledge.lexical import top_k
from knowledge.numerals import ARTICLE_REF_RE, BARE_ARTICLE_RE, cn_to_int
from knowledge.scope import foreign_reference, quantity_anchors
from knowledge.types import Hit


@dataclass(frozen=True)
class RetrievalSettings:
    """Fusion of normalised scores (a convex combination), which beat reciprocal-rank fusion on the
    dev set (hit@1 0.60 -> 0.66 with the same two retrievers); see docs/benchmarks.md."""

    candidates: int = 50  # dense candidates, before fusion
    fusion: str = "score"  # "score": normalised scores; "rank": reciprocal-rank fusion (RRF)
    rrf_k: int = 60
    lexical_weight: float = 0.6
    dense_weight: float = 0.4
    # Share of the dense signal from a passage's nearest article phrasing (knowledge/phrasing_vectors.py)
    # rather than its own vector: 0.2 moved unseen hit@1/hit@5 by +0.03/+0.017.
    phrasing_weight: float = 0.2
    expansion_weight: float = 0.5  # BM25 weight of vocabulary-bridge terms relative to the question's own
    named_law_boost: float = 0.2  # relative bonus for chunks of a law (or article number) the question names
    answer_type_boost: float = 0.15  # relative bonus for passages stating what the question asks for (a time, a fine ...)
    liability_penalty: float = 0.1  # relative malus for 法律责任 articles when the question does not ask about sanctions
    # Re-order the fused candidates with knowledge/ranker_weights.json. Off: cross-validated on held-out
    # 1-3 it gained about 0.02 hit@1/hit@5 (noise level), on the fresh held-out 4 it lost 0.05 hit@1
    # (docs/benchmarks.md); kept for further work.
    learned_ranker: bool = False
    keep_features: bool = False  # keep the ranker's candidate features in Retrieval.signals (training)
    ranker_candidates: int = 30  # fused candidates the learned ranker re-orders


@dataclass
class Query:
    """A question analysed for retrieval."""

    text: str
    tokens: list[str]
    expansion: list[str]
    law: str | None = None  # full title of a law the question names
    article_no: int | None = None  # article number the question names
    phrases: list[str] = field(default_factory=list)  # the vocabulary's legal wording, before segmentation


@dataclass
class Retrieval:
    query: Query
    hits: list[Hit]
    exact: bool = False  # the first hits are the named article itself
    top_lexical: float = 0.0  # best raw BM25 score of the question's own tokens
    top_dense: float = 0.0  # best cosine similarity
    coverage: float = 0.0  # share of the question's tokens found in the best passage
    foreign: str | None = None  # a document the question asks about that the library lacks
    topic_margin: float | None = None  # safety-topic vs other-topic similarity (None: no embedder)
    # nearest phrasing vs nearest question the library does not answer, and that question's file
    # (None: no phrasing vectors)
    example_margin: float | None = None
    example_source: str | None = None
    signals: dict = field(default_factory=dict)


def analyse(index: KnowledgeIndex, question: str) -> Query:
    seg = index.segmenter
    law = vocabulary.resolve_law_alias(question)
    article_no = None
    m = ARTICLE_REF_RE.search(question) or (BARE_ARTICLE_RE.search(question) if law else None)
    if m:
        article_no = cn_to_int(m.group(1))
    phrases = expansions_for(question)
    expansion: list[str] = []
    for words in phrases:
        expansion.extend(seg.tokens(words))
    return Query(question, seg.tokens(question), expansion, law, article_no, phrases)


def retrieve(index: KnowledgeIndex, question: str, k: int = 10, settings: RetrievalSettings | None = None) -> Retrieval:
    settings = settings or RetrievalSettings()
    query = analyse(index, question)
    if not index.chunks:
        return Retrieval(query, [])
    exact = _exact_positions(index, query)

    own = index.lexical.scores(query.tokens)
    expanded = index.lexical.scores(query.expansion) if query.expansion else None
    lexical = own + settings.expansion_weight * expanded if expanded is not None else own
    vector = index.embed_query(question)
    dense_ranked = index.dense_search(vector, settings.candidates)
    phrasing_ranked = index.phrasing_search(vector, settings.candidates) if settings.phrasing_weight > 0 else []
    if settings.fusion == "rank":
        fused = _rank_fused(lexical, dense_ranked, settings)
    else:
        fused = _normalised(lexical)
        if dense_ranked:
            dense = _dense_scores(dense_ranked, fused.size)
            if phrasing_ranked:
                w = settings.phrasing_weight
                dense = (1.0 - w) * dense + w * _dense_scores(phrasing_ranked, fused.size)
            fused = settings.lexical_weight * fused + settings.dense_weight * dense
    named = None
    if query.law or query.article_no is not None:
        named = np.array(
            [
                (query.law is None or c.doc_title == query.law)
                and (query.article_no is None or bool(exact) or c.article_no == query.article_no)
                for c in index.chunks
            ]
        )
        fused = np.where(named, fused * (1.0 + settings.named_law_boost), fused)

    if settings.answer_type_boost or settings.liability_penalty:
        fused = _question_type_adjust(index, question, fused, settings)
    model = ranker.load_model() if settings.learned_ranker or settings.keep_features else None
    signals: dict = {}
    if model is not None or settings.keep_features:
        pool = [p for p in top_k(fused, settings.ranker_candidates + len(exact)) if p not in exact]
        x = ranker.features(
            index, question, query.tokens, query.expansion, query.phrases, pool, own, expanded, dense_ranked, fused,
            [states for asks, states in ANSWER_TYPES if asks.search(question)],
            LIABILITY_ASK_RE.search(question) is not None, named, LIABILITY_HEADING_RE,
        )
        if settings.keep_features:
            signals["pool"], signals["features"] = pool, x
    if model is not None and settings.learned_ranker and pool:
        learned = model.score(x)
        # Scores on (0, 1]: the learned score's softmax relative to the best, so that "nearly as good
        # as the best" (answer.py's further sources) keeps its meaning.
        rel = np.exp(learned - learned.max())
        order = np.argsort(-learned, kind="stable")
        scores = {pool[i]: float(rel[i]) for i in order}
        floor = float(rel.min())
        ordered = [pool[i] for i in order][:k]
        for p in top_k(fused, k + len(exact) + len(pool)):
            if len(ordered) >= k:
                break
            if p not in scores and p not in exact:
                scores[p] = 0.5 * floor * float(fused[p]) / max(float(fused[pool[-1]]), 1e-9)
                ordered.append(p)
    else:
        ordered = [p for p in top_k(fused, k + len(exact)) if p not in exact]
        scores = {p: float(fused[p]) for p in ordered}
    lex_rank = {p: r for r, p in enumerate(top_k(lexical, settings.candidates), start=1)}
    dense_rank = {p: r for r, (p, _) in enumerate(dense_ranked, start=1)}
    hits = [Hit(index.chunks[p], 1.0, exact=True) for p in exact]
    hits += [Hit(index.chunks[p], scores[p], lex_rank.get(p), dense_rank.get(p)) for p in ordered]
    hits = hits[:k]
    best = exact[0] if exact else (ordered[0] if ordered else None)
    return Retrieval(
        query=query,
        hits=hits,
        exact=bool(exact),
        top_lexical=float(own.max()) if own.size else 0.0,
        top_dense=dense_ranked[0][1] if dense_ranked else 0.0,
        coverage=_coverage(index, query, best),
        foreign=None if exact else foreign_reference(question, index.titles),
        topic_margin=index.topic_gate.margin(vector) if vector is not None and index.topic_gate else None,
        **_example_signal(index, vector),
        signals={"quantity_anchors": quantity_anchors(question, query.phrases, lambda w: _is_common(index, w)), **signals},
    )


def _example_signal(index: KnowledgeIndex, vector) -> dict:
    nearest = index.example_gate.margin(vector) if vector is not None and index.example_gate else None
    return {"example_margin": nearest[0], "example_source": nearest[1]} if nearest else {}


# What a question asks for, and how a passage that supplies it reads: "多久" wants a duration or a
# frequency (1小时内, 每月), "怎么罚" a sanction, "算不算" a definition or scope clause (所称, 是指,
# 适用本条例). A passage of the right kind gets a small relative bonus among the fused candidates.
_NUM = "[0-9０-９一二三四五六七八九十两半百千]"
ANSWER_TYPES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"多久|多长时间|多少天|几天|多少日|几日|几个月|多少个月|几年|多少年|几个小时|几小时|多少小时|频率|期限|时限|提前多|隔多"),
     re.compile(rf"{_NUM}+\s*(?:个)?(?:小时|日|天|月|年|周)|每(?:日|天|周|月|季|半年|年|{_NUM})")),
    (re.compile(r"罚多少|怎么罚|如何处罚|怎么处罚|怎么处理|罚款|罚不罚|会被罚|要罚|什么处罚|什么处理|什么责任|担什么|处分"),
     re.compile(r"罚款|处分|吊销|责令|追究")),
    (re.compile(r"多少钱|赔多少|交多少|多少费用"), re.compile(rf"{_NUM}+\s*(?:万)?元|倍")),
    (re.compile(r"几个人|几人|多少人|几名"), re.compile(rf"{_NUM}+\s*(?:名|人)")),
    (re.compile(r"算不算|算是|才算|属于|什么是|什么叫|指什么|指的是|哪几类|几类|分哪几|分为哪|包括哪|归.{0,16}管"),
     re.compile(r"所称|是指|分为|适用本|不适用")),
)
# Articles under 法律责任 restate every duty (to punish its breach), so they match duty questions word for
# word; unless the question asks about sanctions or liability they are pushed down a little.
LIABILITY_HEADING_RE = re.compile(r"法律责任|罚则")
LIABILITY_ASK_RE = re.compile(r"罚|处分|处理|处置|责任|追究|吊销|赔|担责|后果|判|坐牢|拘留|违法|查处|整顿|关停|停产")


def _question_type_adjust(index: KnowledgeIndex, question: str, fused: np.ndarray, settings: RetrievalSettings) -> np.ndarray:
    wanted = [states for asks, states in ANSWER_TYPES if asks.search(question)]
    liability = LIABILITY_ASK_RE.search(question) is not None
    out = fused.copy()
    for pos in top_k(fused, settings.candidates):
        chunk = index.chunks[pos]
        if wanted and any(states.search(chunk.text) for states in wanted):
            out[pos] *= 1.0 + settings.answer_type_boost
        if not liability and any(LIABILITY_HEADING_RE.search(h) for h in chunk.heading_path):
            out[pos] *= 1.0 - settings.liability_penalty
    return out


COMMON_SHARE = 0.1  # a word in more than this share of all passages cannot say what a number is about
# ... in a library of at least this many passages: in a handful of passages every word is "common"
COMMON_MIN_PASSAGES = 50
_DF_CACHE_MAX = 50_000


def _is_common(index: KnowledgeIndex, word: str) -> bool:
    """Is the word in more than COMMON_SHARE of all passages (安全, 生产, 单位 ...)? Cached until the
    passage set changes (the lexical index is rebuilt then)."""
    cache = index.__dict__.setdefault("_df_cache", {})
    if cache.get("\0key") is not index.lexical or len(cache) > _DF_CACHE_MAX:
        cache.clear()
        cache["\0key"] = index.lexical
    if word not in cache:
        cache[word] = sum(1 for c in index.chunks if word in c.text)
    return len(index.chunks) >= COMMON_MIN_PASSAGES and cache[word] > COMMON_SHARE * len(index.chunks)


def _normalised(scores: np.ndarray) -> np.ndarray:
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def _rank_fused(lexical: np.ndarray, dense_ranked: list[tuple[int, float]], settings: RetrievalSettings) -> np.ndarray:
    out = np.zeros(lexical.size, dtype=np.float32)
    for rank, pos in enumerate(top_k(lexical, settings.candidates), start=1):
        out[pos] += settings.lexical_weight / (settings.rrf_k + rank)
    for rank, (pos, _) in enumerate(dense_ranked, start=1):
        out[pos] += settings.dense_weight / (settings.rrf_k + rank)
    return out


def _dense_scores(ranked: list[tuple[int, float]], size: int) -> np.ndarray:
    """Min-max normalised similarities over the candidates; zero outside them."""
    out = np.zeros(size, dtype=np.float32)
    sims = np.array([s for _, s in ranked], dtype=np.float32)
    low, high = float(sims.min()), float(sims.max())
    out[[p for p, _ in ranked]] = (sims - low) / (high - low + 1e-9)
    return out


def _exact_positions(index: KnowledgeIndex, query: Query) -> list[int]:
    if query.law is None or query.article_no is None:
        return []
    return [
        i
        for i, c in enumerate(index.chunks)
        if c.doc_title == query.law and c.article_no == query.article_no
    ]


def _coverage(index: KnowledgeIndex, query: Query, pos: int | None) -> float:
    if pos is None or not query.tokens:
        return 0.0
    text = index.chunks[pos].text
    distinct = set(query.tokens)
    return sum(1 for t in distinct if t in text) / len(distinct)


def article_chunks(index: KnowledgeIndex, law: str, article_no: int) -> list[Hit]:
    """All parts of one article, for 'show me the full article'."""
    return [Hit(c, 1.0, exact=True) for c in index.chunks if c.doc_title == law and c.article_no == article_no]



def expansions_for(question: str) -> list[str]:
    """Legal wording for the chat words in a question, and the formal aliases of glossary terms
    (in vocabulary file order, synonym rules first)."""
    table, longest, expansions = _expansion_table()
    matched: set[int] = set()
    for start in range(len(question)):
        for end in range(start + 1, min(len(question), start + longest) + 1):
            matched.update(table.get(question[start:end], ()))
    return [word for i in sorted(matched) for word in expansions[i]]


@functools.cache
def _expansion_table() -> tuple[dict[str, tuple[int, ...]], int, list[list[str]]]:
    """word -> the rules it triggers. Looking up each substring of a question (≤ `longest` chars)
    replaces testing ~3,600 words against every new question (0.46 -> 0.10 ms per question)."""
    expansions: list[list[str]] = []
    table: dict[str, set[int]] = {}
    triggers = [(rule.words, list(rule.expand)) for rule in vocabulary.load_synonyms()]
    triggers += [([entry.term, *entry.aliases],) * 2 for entry in vocabulary.load_glossary()]
    for i, (words, expand) in enumerate(triggers):
        expansions.append(list(expand))
        for word in words:
            if word:
                table.setdefault(word, set()).add(i)
    longest = max((len(word) for word in table), default=0)
    return {word: tuple(sorted(rules)) for word, rules in table.items()}, longest, expansions
