"""Typical chat phrasings (常见问法): questions people ask when a law article or a speech paragraph is the answer.

The words of a question ("厂里叉车司机没证能开吗") and of the statute ("特种作业人员必须…取得相应资格")
rarely overlap; a handful of everyday phrasings per article, written once by the maintainers and
indexed with the article's BM25 text, bridge that gap the way doc2query expansions do — but written
by people, not generated at run time. They only change which passage is found: answers still quote
the article itself. On the held-out questions, with the phrasing vectors, hit@1 0.63 -> 0.81 and
hit@5 0.84 -> 0.96 (docs/benchmarks.md, session 5).

Files: one JSON-lines file per document, named after the document's title (as `safeduty kb list`
shows it). A line names a law's article, ``{"article": "第二十一条", "questions": ["…"]}``, or, for
speeches, plans and notices, which have no article numbers, the verbatim opening words of a paragraph,
``{"anchor": "第一，吃透精神", "questions": ["…"]}`` (whitespace ignored): the phrasings go to the
passage with a line starting with those words. The bundled phrasings cover the bundled library (knowledge/phrasings/);
a deployment can add its own folders (knowledge.phrasings in config.yaml). A broken line or file is
logged and skipped.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.types import Chunk

log = logging.getLogger(__name__)

BUNDLED_PHRASINGS = Path(__file__).resolve().parent / "phrasings"
MAX_QUESTIONS_PER_ARTICLE = 20  # a runaway file must not swamp an article's own words in BM25

_WS = re.compile(r"\s+")


@dataclass
class Phrasings:
    by_article: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (title, 第X条) -> questions
    by_anchor: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)  # title -> (words, questions)

    def for_chunk(self, chunk: Chunk) -> tuple[str, ...]:
        out = list(self.by_article.get((chunk.doc_title, chunk.article), ())) if chunk.article else []
        anchors = self.by_anchor.get(chunk.doc_title)
        if anchors:
            # At the start of a line: an outline that quotes the headings must not take their phrasings.
            lines = [_WS.sub("", line) for line in chunk.text.splitlines()]
            for words, questions in anchors:
                if any(line.startswith(words) for line in lines):
                    out.extend(questions)
        return tuple(out[:MAX_QUESTIONS_PER_ARTICLE])

    def __len__(self) -> int:
        return len(self.by_article) + sum(len(a) for a in self.by_anchor.values())


def load_phrasings(paths: Iterable[Path]) -> Phrasings:
    """All phrasings in the given files and folders (folders: every *.jsonl inside, sorted)."""
    articles: dict[tuple[str, str], list[str]] = {}
    anchors: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            _read_file(file, articles, anchors)
    by_anchor: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for (title, words), questions in anchors.items():
        by_anchor.setdefault(title, []).append((words, tuple(questions[:MAX_QUESTIONS_PER_ARTICLE])))
    return Phrasings({key: tuple(qs[:MAX_QUESTIONS_PER_ARTICLE]) for key, qs in articles.items()}, by_anchor)


def _read_file(file: Path, articles: dict[tuple[str, str], list[str]], anchors: dict[tuple[str, str], list[str]]) -> None:
    title = file.stem
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("phrasings file %s skipped: %s", file, exc)
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions = record["questions"]
            place = record.get("article", record.get("anchor"))
            if not isinstance(place, str) or not place.strip() or not isinstance(questions, list):
                raise TypeError("needs an article or anchor string and a list of questions")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("phrasings %s line %d skipped: %s", file, number, exc)
            continue
        if "article" in record:
            bucket = articles.setdefault((title, place.strip()), [])
        else:
            bucket = anchors.setdefault((title, _WS.sub("", place)), [])
        bucket.extend(q.strip() for q in questions if isinstance(q, str) and q.strip())
