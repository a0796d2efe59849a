"""Answering: turn a Retrieval into what the bot says. Extractive by default — the sentence(s) of the
best passage that answer, quoted, with the citation — and a plain refusal when evidence is weak.
Retrieval (retrieve.py) and answering are separate steps; every answer carries its sources.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from knowledge import vocabulary
from knowledge.retrieve import Retrieval
from knowledge.scope import asks_about_a_speech, missing_quantity
from knowledge.types import Answer, Citation, Hit

log = logging.getLogger(__name__)
# Passages searched for a stated quantity; each must state it next to the question's words (scope.py).
QUANTITY_PASSAGES = 5
# ... among those at least this close in score to the best: far weaker passages (the learned ranker's
# scores fall steeply) stating some number near some question word do not answer the question.
QUANTITY_MIN_RELATIVE_SCORE = 0.1
_SENTENCE_RE = re.compile(r"[^。！？；\n]+[。！？；]?")


@dataclass(frozen=True)
class AnswerStyle:
    max_reply_chars: int = 1000
    further_sources: int = 2
    min_confidence: float = 0.2
    min_topic_margin: float = -0.025
    min_example_margin: float = 0.0
    admin_contact: str = "区安委办"


def confidence(retrieval: Retrieval) -> float:
    """0..1: how well the best passage covers the question's own words (exact look-ups are certain)."""
    if retrieval.exact:
        return 1.0
    if not retrieval.hits:
        return 0.0
    lexical = 1.0 - math.exp(-retrieval.top_lexical / 10.0)
    return max(0.0, min(1.0, 0.5 * retrieval.coverage + 0.5 * lexical))


def decline_reason(retrieval: Retrieval, style: AnswerStyle) -> str | None:
    """Why the knowledge base cannot answer this question, or None when it can."""
    if retrieval.exact:
        return None
    if not retrieval.hits:
        return "no passage"
    if retrieval.foreign:
        return f"asks about {retrieval.foreign}, not in the library"
    if not asks_about_a_speech(retrieval.query.text):
        if retrieval.topic_margin is not None and retrieval.topic_margin < style.min_topic_margin:
            return f"off-topic (margin {retrieval.topic_margin:.3f})"
        if retrieval.example_margin is not None and retrieval.example_margin < style.min_example_margin:
            return (f"nearer a question the library does not answer ({retrieval.example_source}, "
                    f"margin {retrieval.example_margin:.3f})")
    top_score = retrieval.hits[0].score
    quantity_passages = [h.chunk.text for h in retrieval.hits[:QUANTITY_PASSAGES]
                         if h.score >= QUANTITY_MIN_RELATIVE_SCORE * top_score]
    if missing_quantity(retrieval.query.text, quantity_passages,
                        retrieval.signals.get("quantity_anchors")):
        return "asks for a number, date or name none of the best passages states"
    if confidence(retrieval) < style.min_confidence:
        return f"weak evidence ({confidence(retrieval):.2f})"
    return None


def refusal(question: str, style: AnswerStyle, foreign: str | None = None) -> Answer:
    lead = (
        f"知识库里没有收录{_quote_title(foreign)}，我不便凭印象作答。"
        if foreign
        else "抱歉，知识库里没有找到能回答这个问题的规定或文件，我不便凭空作答。"
    )
    text = (
        f"{lead}\n"
        "可以换个说法再问，最好带上法规名称或关键词（例如“安全生产法第二十一条”“九小场所指哪些”）；"
        f"具体事项请咨询{style.admin_contact}或相关行业主管部门。"
    )
    return Answer(answered=False, text=text, mode="refusal")


def _quote_title(name: str) -> str:
    if not re.search(r"[\u4e00-\u9fff]", name) or name.endswith("的规定"):  # GB 50016, 日本的规定
        return name
    return f"《{name}》"


def _citation(hit: Hit, text: str | None = None) -> Citation:
    c = hit.chunk
    return Citation(source=c.doc_title, article=c.article, text=text or c.text, heading_path=c.heading_path)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def best_sentences(text: str, terms: list[str], limit: int = 220) -> str:
    """The contiguous run of sentences that covers the most question terms, within `limit` chars."""
    sentences = [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip()]
    if not sentences:
        return _clip(text, limit)
    weights = {t: 1.0 + min(len(t), 4) / 2 for t in set(terms)}

    def score(span: list[str]) -> float:
        joined = "".join(span)
        return sum(w for t, w in weights.items() if t in joined)

    best, best_score = sentences[0], -1.0
    for i in range(len(sentences)):
        span: list[str] = []
        for j in range(i, len(sentences)):
            span.append(sentences[j])
            if len("".join(span)) > limit and len(span) > 1:
                break
            s = score(span) - 0.01 * len("".join(span)) / 100  # prefer shorter on ties
            if s > best_score:
                best, best_score = "".join(span), s
    return _clip(best, limit)


def _glossary_note(question: str) -> str:
    for entry in vocabulary.load_glossary():
        if any(name in question for name in (entry.term, *entry.aliases)):
            return f"【{entry.term}】{entry.definition}"
    return ""


def extractive_answer(retrieval: Retrieval, style: AnswerStyle) -> Answer:
    if retrieval.exact:
        return article_answer(retrieval.hits, style, full=False)
    reason = decline_reason(retrieval, style)
    if reason:
        log.info("declined %r: %s", retrieval.query.text[:80], reason)
        return refusal(retrieval.query.text, style, retrieval.foreign)
    top = retrieval.hits[0]
    terms = retrieval.query.tokens + retrieval.query.expansion
    quote = _with_lead_in(top.chunk.text, best_sentences(top.chunk.text, terms))
    parts = []
    note = _glossary_note(retrieval.query.text)
    if note:
        parts.append(note)
    parts.append(f"{top.chunk.citation()}：\n“{quote}”")
    citations = [_citation(top, quote)]
    further = _further(retrieval.hits[1:], top, style.further_sources)
    if further:
        lines = []
        for hit in further:
            snippet = best_sentences(hit.chunk.text, terms, limit=80)
            lines.append(f"· {hit.chunk.citation()}：{snippet}")
            citations.append(_citation(hit, snippet))
        parts.append("相关依据：\n" + "\n".join(lines))
    if top.chunk.article:
        parts.append(f"查看条文全文：/article {top.chunk.doc_title} {top.chunk.article}")
    text = _fit("\n\n".join(parts), style.max_reply_chars)
    return Answer(answered=True, text=text, citations=tuple(citations), mode="extractive")


_ITEM_RE = re.compile(r"^[（(][一二三四五六七八九十]+[）)]")


def _with_lead_in(text: str, quote: str) -> str:
    """A quote that starts at an item (（三）…) gets its list's lead-in (…下列行为：) in front."""
    if not _ITEM_RE.match(quote):
        return quote
    first = _SENTENCE_RE.match(quote)  # the quote's sentences may span line breaks: find its first
    before = text[: max(text.find(first.group(0) if first else quote), 0)]
    leads = [line for line in before.split("\n") if line.rstrip().endswith(("：", ":"))]
    if not leads:
        return quote
    lead = leads[-1].strip()
    lead = lead if len(lead) <= 80 else "……" + lead[-78:]
    return f"{lead}……{quote}"


# Further sources must be nearly as relevant as the best passage, or they are noise.
FURTHER_MIN_RELATIVE_SCORE = 0.6


def _further(hits: list[Hit], top: Hit, n: int) -> list[Hit]:
    """Further sources: distinct places, close in score to the best, not parts of the same article."""
    seen = {(top.chunk.doc_title, top.chunk.article or top.chunk.ordinal)}
    out = []
    for hit in hits:
        if not top.exact and hit.score < FURTHER_MIN_RELATIVE_SCORE * top.score:
            break
        key = (hit.chunk.doc_title, hit.chunk.article or hit.chunk.ordinal)
        if key in seen:
            continue
        seen.add(key)
        out.append(hit)
        if len(out) >= n:
            break
    return out


def article_answer(hits: list[Hit], style: AnswerStyle, full: bool) -> Answer:
    """The text of one article (all its parts), trimmed to the chat limit unless `full`."""
    if not hits:
        return Answer(False, "没有找到这一条。请检查法规名称和条号，例如：/article 安全生产法 第二十一条", mode="refusal")
    first = hits[0].chunk
    same = [h for h in hits if h.chunk.doc_title == first.doc_title and h.chunk.article == first.article]
    body = _join_parts([h.chunk.text for h in same])
    head = first.citation()
    if first.heading_path:
        head += f"（{' › '.join(first.heading_path)}）"
    text = f"{head}\n{body}"
    if not full and len(text) > style.max_reply_chars:
        hint = f"\n……\n（条文较长，发送 /article {first.doc_title} {first.article} 查看全文）"
        text = text[: style.max_reply_chars - len(hint)] + hint
    citation = Citation(first.doc_title, first.article, body, first.heading_path)
    return Answer(True, text, (citation,), mode="lookup")


def _join_parts(texts: list[str]) -> str:
    """Re-assemble a split article: drop the header repeated at the top of parts after the first."""
    if not texts:
        return ""
    out = [texts[0]]
    lead = texts[0].split("\n", 1)[0]
    for t in texts[1:]:
        first, _, rest = t.partition("\n")
        out.append(rest if lead.startswith(first.rstrip("…")) and rest else t)
    return "\n".join(out)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
