"""Optional LLM-written answers over retrieved passages, with strict grounding checks.

The model (any OpenAI-compatible endpoint, via langchain-openai) sees at most MAX_PASSAGES passages,
numbered [1]..[n] with their citation labels, and must answer only from them with [n] markers.
Its output is accepted only if every marker points at a given passage and every 《title》(第X条) it names
is one of the passages (or is quoted inside one). A plain "not covered" (NOT_COVERED, no marker) is the
model's reading that the passages do not answer the question: the caller declines, since judging that
is what the extractive path cannot do. Anything else returns None: the caller then falls back to the
extractive answer. langchain_openai is imported lazily: the extractive path never pays for it.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any

from knowledge.numerals import cn_to_int
from knowledge.types import Answer, Chunk, Citation, Hit

if TYPE_CHECKING:
    from bot.config import LLMSettings

log = logging.getLogger("knowledge.llm")

MAX_PASSAGES = 5
NOT_COVERED = "知识库中没有相关规定"
PLACEHOLDER_KEY = "not-needed"  # local servers (Ollama, vLLM, llama.cpp) ignore the key

SYSTEM_PROMPT = f"""你是安全生产法规咨询助手，只能依据用户消息中【资料】部分的条文回答问题。
要求：
1. 用简体中文作答，不超过300字，直接回答问题，不要复述问题，不要寒暄。
2. 只使用资料中的内容，不得使用资料以外的知识，不得编造法规名称、条号或数字。
3. 每一处结论后用方括号标注所依据资料的编号，例如[1]或[1][2]；编号只能是资料中给出的编号。
4. 提到法规时，只能使用资料中出现的法规名称和条号，例如《某某法》第二十一条。
5. 如果资料不能回答这个问题，只回复：{NOT_COVERED}"""

THINK_BLOCK_RE = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.S | re.I)
MARKER_RE = re.compile(r"[\[［【]\s*(\d{1,3}(?:\s*[,，、;；\-–~]\s*\d{1,3})*)\s*[\]］】]")
_NUM = r"[零〇一二三四五六七八九十百千两0-9０-９]+"
TITLE_REF_RE = re.compile(rf"《([^《》\n]{{1,80}})》\s*(?:第\s*({_NUM})\s*条)?")
NOT_COVERED_RE = re.compile(r"知识库中?(?:没有|并无|无)相关的?规定")

_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


class Rejected(Exception):
    """The model output failed a grounding check; the message names the reason."""


class NotCovered(Exception):
    """The model read the passages and says they do not answer the question."""


def llm_answer(question: str, hits: list[Hit], settings: LLMSettings) -> Answer | None:
    """An LLM-written, citation-checked answer; an unanswered one when the model finds no answer in the
    passages; None to fall back to the extractive answer."""
    chunks = [hit.chunk for hit in hits[:MAX_PASSAGES]]
    if not chunks:
        log.warning("LLM answer skipped: no passages")
        return None
    messages = [("system", SYSTEM_PROMPT), ("human", build_prompt(question, chunks))]
    try:
        reply = _client(settings).invoke(messages)
    except Exception as exc:  # timeouts, HTTP errors, connection refused, bad payloads
        log.warning(
            "LLM answer rejected: call to %s failed: %s: %s", settings.base_url, type(exc).__name__, exc
        )
        return None
    try:
        return check_answer(_content_text(reply), chunks)
    except NotCovered:
        log.info("LLM found no answer in the passages for %r", question[:80])
        return Answer(answered=False, text=NOT_COVERED, mode="refusal")
    except Rejected as exc:
        log.warning("LLM answer rejected: %s", exc)
        return None


def build_prompt(question: str, chunks: list[Chunk]) -> str:
    parts = [f"[{i}] {chunk.citation()}\n{chunk.text.strip()}" for i, chunk in enumerate(chunks, 1)]
    return "【资料】\n\n" + "\n\n".join(parts) + f"\n\n【问题】\n{question.strip()}"


def check_answer(raw: str, chunks: list[Chunk]) -> Answer:
    """Validate the model text against the passages it was given; raise Rejected on any problem."""
    text = strip_thinking(raw)
    if not text:
        raise Rejected("empty output")
    if NOT_COVERED_RE.search(text):
        if not MARKER_RE.search(text):
            raise NotCovered()
        # a partial answer that cites passages and says part is not covered: the extractive answer
        raise Rejected("model said the passages do not cover the question")
    order = _cited_passages(text, len(chunks))  # passage indexes (0-based) in first-marker order
    _check_titles(text, chunks)
    renumber = {idx: n for n, idx in enumerate(order, 1)}

    def _rewrite(m: re.Match) -> str:
        return "".join(f"[{renumber[i - 1]}]" for i in dict.fromkeys(_marker_numbers(m.group(1))))

    body = MARKER_RE.sub(_rewrite, text)
    body = re.sub(r"(\[\d+\])\1+", r"\1", body)  # [1][1] -> [1]
    cited = [chunks[i] for i in order]
    basis = "\n".join(f"[{n}] {chunk.citation()}" for n, chunk in enumerate(cited, 1))
    citations = tuple(
        Citation(source=c.doc_title, article=c.article, text=c.text, heading_path=c.heading_path)
        for c in cited
    )
    return Answer(answered=True, text=f"{body}\n\n依据：\n{basis}", citations=citations, mode="llm")


def strip_thinking(text: str) -> str:
    """Drop <think>...</think> blocks, a dangling close tag, and an unterminated open block."""
    text = THINK_BLOCK_RE.sub("", text or "")
    lowered = text.lower()
    for close in ("</think>", "</thinking>"):
        if close in lowered:  # template opened the block for the model: keep what follows the last close
            text = text[lowered.rfind(close) + len(close):]
            lowered = text.lower()
    m = re.search(r"<think(?:ing)?>", text, re.I)
    if m:  # truncated mid-thought: nothing after it is an answer
        text = text[: m.start()]
    return text.strip()


def _marker_numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for piece in re.split(r"\s*[,，、;；]\s*", group.strip()):
        ends = [int(x) for x in re.split(r"\s*[\-–~]\s*", piece) if x]
        if len(ends) == 2 and 0 < ends[1] - ends[0] < 10:
            numbers.extend(range(ends[0], ends[1] + 1))
        else:
            numbers.extend(ends)
    return numbers


def _cited_passages(text: str, n: int) -> list[int]:
    order: list[int] = []
    for m in MARKER_RE.finditer(text):
        for number in _marker_numbers(m.group(1)):
            if not 1 <= number <= n:
                raise Rejected(f"marker [{number}] outside 1..{n}")
            if number - 1 not in order:
                order.append(number - 1)
    if not order:
        raise Rejected("no [n] citation marker")
    return order


def _norm_title(title: str) -> str:
    title = re.sub(r"\s+", "", title)
    title = re.sub(r"[（(][^（）()]*[）)]$", "", title)  # （2021年修正）
    return title.removeprefix("中华人民共和国")


def _article_no(chunk: Chunk) -> int | None:
    if chunk.article_no is not None:
        return chunk.article_no
    m = re.search(rf"第\s*({_NUM})\s*条", chunk.article or "")
    return cn_to_int(m.group(1)) if m else None


def _refs(text: str) -> list[tuple[str, str, int | None]]:
    """(shown reference, normalised title, article number or None) for every 《title》(第X条) in text."""
    out = []
    for m in TITLE_REF_RE.finditer(text):
        number = cn_to_int(m.group(2)) if m.group(2) else None
        out.append((m.group(0).strip(), _norm_title(m.group(1)), number))
    return out


def _check_titles(text: str, chunks: list[Chunk]) -> None:
    """Every 《title》 and 《title》第X条 the model names must be a passage label or quoted in a passage."""
    titles = {_norm_title(c.doc_title) for c in chunks}
    articles = {(_norm_title(c.doc_title), _article_no(c)) for c in chunks}
    quoted = {(t, n) for c in chunks for _, t, n in _refs(c.text)}
    quoted_titles = {t for t, _ in quoted}
    for shown, title, number in _refs(text):
        if number is None:
            ok = title in titles or title in quoted_titles
        else:
            ok = (title, number) in articles or (title, number) in quoted
        if not ok:
            raise Rejected(f"citation {shown} is not among the passages given")


def _content_text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return content if isinstance(content, str) else str(content or "")


def _client(settings: LLMSettings) -> Any:
    """One ChatOpenAI per distinct settings (and key); built on first use."""
    api_key = (os.environ.get(settings.api_key_env) if settings.api_key_env else None) or PLACEHOLDER_KEY
    key = (settings.base_url, settings.model, api_key, settings.timeout_seconds, settings.max_tokens,
           settings.temperature)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from langchain_openai import ChatOpenAI  # lazy: ~1.3 s import

            if len(_clients) >= 8:
                _clients.clear()
            client = _clients[key] = ChatOpenAI(
                base_url=settings.base_url,
                model=settings.model,
                api_key=api_key,
                timeout=settings.timeout_seconds,
                max_retries=0,
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
            )
        return client
