"""Typical chat phrasings (常见问法) of law articles: questions people ask when an article is the answer.

The words of a question ("厂里叉车司机没证能开吗") and of the statute ("特种作业人员必须…取得相应资格")
rarely overlap; a handful of everyday phrasings per article, written once by the maintainers and
indexed with the article's BM25 text, bridge that gap the way doc2query expansions do — but written
by people, not generated at run time. They only change which passage is found: answers still quote
the article itself. On the questions we had not tuned on, hit@1 0.631 -> 0.700 and hit@5 0.844 ->
0.910 (docs/benchmarks.md, session 5).

Files: one JSON-lines file per document, named after the document's title (as `safeduty kb list`
shows it), each line ``{"article": "第二十一条", "questions": ["…", "…"]}``. The bundled phrasings
cover the bundled laws (knowledge/phrasings/); a deployment can add its own folders
(knowledge.phrasings in config.yaml). A broken line or file is logged and skipped.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_PHRASINGS = Path(__file__).resolve().parent / "phrasings"
MAX_QUESTIONS_PER_ARTICLE = 20  # a runaway file must not swamp an article's own words in BM25

Phrasings = Mapping[tuple[str, str], tuple[str, ...]]  # (document title, article) -> questions


def load_phrasings(paths: Iterable[Path]) -> dict[tuple[str, str], tuple[str, ...]]:
    """All phrasings in the given files and folders (folders: every *.jsonl inside, sorted)."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        for file in files:
            _read_file(file, out)
    return {key: tuple(questions[:MAX_QUESTIONS_PER_ARTICLE]) for key, questions in out.items()}


def _read_file(file: Path, out: dict[tuple[str, str], list[str]]) -> None:
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
            article = record["article"]
            questions = record["questions"]
            if not isinstance(article, str) or not isinstance(questions, list):
                raise TypeError("article must be a string and questions a list")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("phrasings %s line %d skipped: %s", file, number, exc)
            continue
        bucket = out.setdefault((title, article.strip()), [])
        bucket.extend(q.strip() for q in questions if isinstance(q, str) and q.strip())
