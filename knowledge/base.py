"""The knowledge base as one object: ingest files, search, answer. Knows nothing of chats."""
from __future__ import annotations

import fcntl
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from knowledge import vocabulary
from knowledge.answer import AnswerStyle, article_answer, extractive_answer, refusal
from knowledge.index import IngestReport, KnowledgeIndex
from knowledge.loaders import LoadError, iter_document_paths, load_document
from knowledge.numerals import ARTICLE_REF_RE, cn_to_int
from knowledge.retrieve import Retrieval, RetrievalSettings, article_chunks, retrieve
from knowledge.types import Answer

log = logging.getLogger(__name__)

BUNDLED_LIBRARY = Path(__file__).resolve().parent / "library"
BUNDLED_VECTORS = Path(__file__).resolve().parent / "vectors"  # precomputed vectors of the library
ANSWER_CACHE_SIZE = 4096
_CACHE_KEY_STRIP = re.compile(r"[\s，。？！、,.?!：:；;“”\"'（）()]+")


class _Pending:
    """A computation in progress that other askers of the same question wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: Answer | None = None


class AnswerCache:
    """Answers to recent questions, keyed by the question without spacing and punctuation.

    Chat traffic repeats itself (the same few dozen questions arrive from many people), and one
    answer costs ~20 ms of CPU, most of it the query embedding. The cache is dropped whenever
    the index changes, so an answer never outlives the passages it quotes. Thread-safe: the
    channels answer in worker threads.
    """

    def __init__(self, size: int = ANSWER_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self.hits = self.misses = 0
        self.waiting = 0  # askers waiting for another asker's computation of the same question

    @staticmethod
    def key(question: str) -> str:
        return _CACHE_KEY_STRIP.sub("", question)

    def holds(self, question: str) -> bool:
        """Whether an answer is cached, without counting a hit or a miss (for routing decisions)."""
        return self.key(question) in self._items

    def peek(self, question: str) -> Answer | None:
        """The cached answer without counting it (to hand an answer to another process's cache)."""
        return self._items.get(self.key(question))

    def get(self, question: str) -> Answer | None:
        key = self.key(question)
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: str) -> Answer | None:
        answer = self._items.get(key)
        if answer is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return answer

    def get_or_compute(self, question: str, compute: Callable[[], tuple[Answer, bool]]) -> Answer:
        """The cached answer, or `compute()` (answer, cacheable) run once for concurrent askers of
        the same question: a popular question arriving fifty times at once is answered once."""
        key = self.key(question)
        with self._lock:
            answer = self._lookup(key)
            if answer is not None:
                return answer
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
            else:
                self.waiting += 1
        if not owner:
            pending.done.wait()
            with self._lock:
                self.waiting -= 1
            if pending.answer is not None:
                return pending.answer
            answer, _ = compute()  # the first asker failed: try on our own
            return answer
        try:
            answer, cacheable = compute()
            pending.answer = answer
            if cacheable:
                self.put(question, answer)
            return answer
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.done.set()

    def put(self, question: str, answer: Answer) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[self.key(question)] = answer
            self._items.move_to_end(self.key(question))
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class KnowledgeBase:
    def __init__(
        self,
        index: KnowledgeIndex,
        style: AnswerStyle,
        lock_path: Path | None = None,
        llm_settings=None,
        retrieval: RetrievalSettings | None = None,
        cache_size: int = ANSWER_CACHE_SIZE,
    ) -> None:
        self.index = index
        self.answers = AnswerCache(cache_size)
        self.style = style
        self.llm_settings = llm_settings
        self.retrieval_settings = retrieval or RetrievalSettings()
        self._lock_path = lock_path

    # ------------------------------------------------------------ ingest

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time per data directory (several processes may share it)."""
        if self._lock_path is None:
            yield
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ingest_paths(self, paths: list[Path]) -> IngestReport:
        report = IngestReport()
        files, problems = iter_document_paths(paths)
        report.errors.extend(problems)
        with self._writer_lock():
            self.index.sweep()
            for path in files:
                try:
                    doc = load_document(path)
                    outcome = self.index.ingest(doc)
                except LoadError as exc:
                    report.errors.append(str(exc))
                    log.warning("ingest failed for %s: %s", path, exc)
                    continue
                getattr(report, outcome).append(doc.title)
            self.index.reload()
            self.answers.clear()
        return report

    def remove(self, title: str) -> bool:
        title = title.strip().strip("《》")
        title = vocabulary.resolve_law_alias(title) or title
        with self._writer_lock():
            removed = self.index.remove(title)
            self.index.reload()
            self.answers.clear()
        return removed

    def is_empty(self) -> bool:
        return not self.index.chunks

    # ------------------------------------------------------------ questions

    def search(self, question: str, k: int = 10) -> Retrieval:
        return retrieve(self.index, question, k, self.retrieval_settings)

    def ask(self, question: str) -> Answer:
        question = question.strip()
        if not question:
            return Answer(False, "请输入要咨询的问题，例如：安全生产法第二十一条讲什么？", mode="refusal")
        if self.is_empty():
            return Answer(False, "知识库还是空的，请管理员先导入法规文件（safeduty kb ingest 路径）。", mode="refusal")
        return self.answers.get_or_compute(question, lambda: self._answer(question))

    def _answer(self, question: str) -> tuple[Answer, bool]:
        """The answer, and whether it may be cached (not an extractive stand-in for a failed LLM call,
        which should be retried next time)."""
        retrieval = self.search(question, k=10)
        extractive = extractive_answer(retrieval, self.style)
        if self.llm_settings is not None and self.llm_settings.enabled and extractive.answered and not retrieval.exact:
            from knowledge.llm import llm_answer

            written = llm_answer(question, retrieval.hits, self.llm_settings)
            if written is None:
                return extractive, False
            if not written.answered:  # the model read the passages and found no answer in them
                return refusal(question, self.style), True
            return written, True
        return extractive, True

    def warm_up(self) -> None:
        """Load what the first question would otherwise pay for (the embedding model's first run,
        the topic gate's vectors: about 2 s), without caching an answer."""
        if not self.is_empty():
            for question in ("生产经营单位的安全生产责任有哪些", "三管三必须是什么意思"):  # passages, glossary
                self._answer(question)

    def article(self, request: str, full: bool = True) -> Answer:
        """'/article 安全生产法 第二十一条' (or '21'): the article text, whole."""
        law = vocabulary.resolve_law_alias(request)
        m = ARTICLE_REF_RE.search(request)
        number = cn_to_int(m.group(1)) if m else None
        if number is None:
            tail = request.split()[-1] if request.split() else ""
            number = cn_to_int(tail)
        if law is None or number is None:
            return Answer(False, "请写明法规名称和条号，例如：/article 安全生产法 第二十一条", mode="refusal")
        return article_answer(article_chunks(self.index, law, number), self.style, full=full)

    def refusal(self, question: str) -> Answer:
        return refusal(question, self.style)
