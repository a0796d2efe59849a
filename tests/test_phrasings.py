"""Everyday phrasings of law articles (knowledge/phrasings.py): loaded from JSON-lines files, indexed
with the article's BM25 text, never quoted; broken files are skipped with a log line."""
import json
import logging
from pathlib import Path

import pytest

from bot.app import build_knowledge
from knowledge.phrasings import BUNDLED_PHRASINGS, load_phrasings
from tests.conftest import LIBRARY, lexical_config

LAW = """# 测试安全条例

2020年1月1日 测试公布

<!-- INFO END -->

## 第一章 总则

第一条 为了测试，制定本条例。

第二条 村口设置的宣传栏应当定期更新安全生产内容。

第三条 饮用水源保护设施的维护由村民委员会负责。

第四条 本条例自公布之日起施行。
"""
# Shares no word with 第三条 but one (村口) with 第二条: only the phrasing can lead to 第三条.
COLLOQUIAL = "村口那口老井盖子坏了归谁修"
PHRASING = {"article": "第三条", "questions": ["村里水井的井盖坏了该谁来修？"]}


def write_phrasings(folder: Path, title: str, rows: list[dict] | list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{title}.jsonl"
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kb_with(tmp_path: Path, phrasing_dirs: list[str]):
    config = lexical_config()
    config.knowledge.phrasings = phrasing_dirs
    kb = build_knowledge(config, tmp_path / "data")
    law = tmp_path / "law.md"
    law.write_text(LAW, encoding="utf-8")
    kb.ingest_paths([law])
    return kb


def top_article(kb, question: str) -> str | None:
    hits = kb.search(question).hits
    return hits[0].chunk.article if hits else None


def test_a_phrasing_leads_a_colloquial_question_to_its_article(tmp_path):
    folder = tmp_path / "phrasings"
    write_phrasings(folder, "测试安全条例", [PHRASING])
    assert top_article(kb_with(tmp_path, [str(folder)]), COLLOQUIAL) == "第三条"


def test_without_phrasings_the_same_question_misses_that_article(tmp_path):
    assert top_article(kb_with(tmp_path, []), COLLOQUIAL) == "第二条"


def test_the_passage_found_is_the_article_text_not_the_phrasing(tmp_path):
    folder = tmp_path / "phrasings"
    write_phrasings(folder, "测试安全条例", [PHRASING])
    kb = kb_with(tmp_path, [str(folder)])
    hits = kb.search(COLLOQUIAL).hits
    assert "饮用水源保护设施" in hits[0].chunk.text
    assert all("水井" not in hit.chunk.text for hit in hits)


def test_a_question_in_chat_words_only_the_phrasings_share_is_answered(bundled_kb):
    """The statute says 特种设备作业人员…取得…证书; the question shares none of its words. The
    phrasings find the article and count as evidence for answering it."""
    answer = bundled_kb.ask("叉车司机没证能开吗")
    assert answer.answered
    assert any(c.source == "特种设备安全监察条例" for c in answer.citations)


def test_broken_lines_and_files_are_skipped_with_a_log_line(tmp_path, caplog):
    folder = tmp_path / "phrasings"
    write_phrasings(folder, "测试安全条例", [
        {"article": "第二条", "questions": ["宣传栏多久换一次内容"]},
        "{not json",
        {"article": 3, "questions": ["编号写成了数字"]},
        {"questions": ["缺了条号"]},
    ])
    (folder / "乱码条例.jsonl").write_bytes("第一条".encode("gb18030") + b"\xff\xfe")
    with caplog.at_level(logging.WARNING, logger="knowledge.phrasings"):
        loaded = load_phrasings([folder])
    assert loaded.by_article == {("测试安全条例", "第二条"): ("宣传栏多久换一次内容",)} and not loaded.by_anchor
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 4


def test_a_missing_folder_gives_no_phrasings():
    assert len(load_phrasings([Path("/nonexistent/phrasings")])) == 0


@pytest.mark.parametrize(
    "law_file", [p for p in sorted((LIBRARY / "laws").glob("*.md")) if p.name != "SOURCES.md"], ids=lambda p: p.stem
)
def test_bundled_phrasings_name_articles_that_exist(law_file):
    from knowledge.loaders import load_document
    from knowledge.splitter import split_document

    doc = load_document(law_file)
    articles = {c.article for c in split_document(doc, 600)}
    bundled = {article for (title, article) in load_phrasings([BUNDLED_PHRASINGS]).by_article if title == doc.title}
    assert bundled, f"no phrasings for {doc.title}"
    assert bundled <= articles


SPEECH = """在全镇安全生产工作会议上的讲话

一、认清形势
今年以来，全镇安全生产形势总体平稳，但隐患依然不少。
二、压实责任
各村要把网格员的巡查频次提上去，每周至少走一遍辖区的小作坊。
"""


def test_an_anchor_gives_phrasings_to_the_paragraph_that_starts_with_it(tmp_path):
    speech = tmp_path / "镇长讲话.txt"
    speech.write_text(SPEECH, encoding="utf-8")
    config = lexical_config()
    folder = tmp_path / "phrasings"
    config.knowledge.phrasings = [str(folder)]
    kb = build_knowledge(config, tmp_path / "data")
    kb.ingest_paths([speech])
    title = kb.index.chunks[0].doc_title
    write_phrasings(folder, title, [{"anchor": "各村要把 网格员", "questions": ["开会说的村里巡逻多久转一次？"]}])
    kb = build_knowledge(config, tmp_path / "data")  # phrasings are read when the index opens
    hits = kb.search("村里巡逻多久转一次").hits
    assert "网格员的巡查频次" in hits[0].chunk.text


@pytest.mark.parametrize(
    "speech_file", [p for p in sorted((LIBRARY / "speeches").glob("*.txt"))], ids=lambda p: p.stem
)
def test_every_bundled_speech_anchor_finds_its_paragraph(speech_file):
    from knowledge.loaders import load_document
    from knowledge.splitter import split_document

    doc = load_document(speech_file)
    chunks = split_document(doc, 600)
    phrasings = load_phrasings([BUNDLED_PHRASINGS])
    anchors = phrasings.by_anchor.get(doc.title, [])
    assert anchors, f"no phrasings for {doc.title}"
    given = {q for c in chunks for q in phrasings.for_chunk(c)}
    assert all(set(questions) <= given for _, questions in anchors)


# ---------------------------------------------------------------- phrasing vectors (dense side)


@pytest.fixture
def fake_embeddings():
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


def dense_kb(tmp_path: Path, server, folder: Path):
    config = lexical_config()
    config.knowledge.embedding.provider = "openai"
    config.knowledge.embedding.base_url = server.base_url
    config.knowledge.embedding.model = "fake-embed"
    config.knowledge.phrasings = [str(folder)]
    kb = build_knowledge(config, tmp_path / "data")
    law = tmp_path / "law.md"
    law.write_text(LAW, encoding="utf-8")
    kb.ingest_paths([law])
    return kb, config


def embedded_texts(server) -> list[str]:
    return [text for r in server.requests if r.path.endswith("/embeddings") for text in r.body["input"]]


def test_a_question_near_a_phrasing_finds_its_article_by_vector(tmp_path, fake_embeddings):
    folder = tmp_path / "phrasings"
    write_phrasings(folder, "测试安全条例", [PHRASING])
    kb, _ = dense_kb(tmp_path, fake_embeddings, folder)
    question = PHRASING["questions"][0]  # the fake service gives equal texts equal vectors, others unrelated ones
    position, similarity = kb.index.phrasing_search(kb.index.embed_query(question), 5)[0]
    assert kb.index.chunks[position].article == "第三条" and similarity == pytest.approx(1.0)


def test_a_phrasing_is_embedded_once_across_restarts(tmp_path, fake_embeddings):
    folder = tmp_path / "phrasings"
    write_phrasings(folder, "测试安全条例", [PHRASING])
    _, config = dense_kb(tmp_path, fake_embeddings, folder)
    build_knowledge(config, tmp_path / "data")  # reopen: the vector comes from Chroma
    assert embedded_texts(fake_embeddings).count(PHRASING["questions"][0]) == 1
