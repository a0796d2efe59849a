"""Structure-aware splitting of real laws and speeches from the bundled library."""
from pathlib import Path

import pytest

from knowledge.loaders import load_document
from knowledge.splitter import split_document
from knowledge.types import DocKind, SourceDocument

LIB = Path(__file__).resolve().parent.parent / "knowledge" / "library"


@pytest.fixture(scope="module")
def safety_law_chunks():
    return split_document(load_document(LIB / "laws" / "中华人民共和国安全生产法.md"))


def test_law_splits_one_chunk_per_article(safety_law_chunks):
    articles = {c.article_no for c in safety_law_chunks}
    assert articles == set(range(1, 120))  # 119 articles, none lost or invented


def test_article_chunk_carries_title_chapter_and_number(safety_law_chunks):
    c = next(c for c in safety_law_chunks if c.article_no == 21)
    assert c.article == "第二十一条"
    assert c.doc_title == "中华人民共和国安全生产法"
    assert c.heading_path == ("第二章 生产经营单位的安全生产保障",)
    assert c.text.startswith("第二十一条 生产经营单位的主要负责人对本单位安全生产工作负有下列职责")
    assert "（七）及时、如实报告生产安全事故。" in c.text


def test_chunk_span_points_into_the_document():
    doc = load_document(LIB / "laws" / "中华人民共和国消防法.md")
    for c in split_document(doc):
        assert doc.text[c.start : c.end].startswith(c.text.split("\n")[0][:20])


def test_section_path_includes_chapter_and_section():
    chunks = split_document(load_document(LIB / "laws" / "中华人民共和国道路交通安全法.md"))
    paths = {c.heading_path for c in chunks}
    assert any(len(p) == 2 and p[1].startswith("第") and "节" in p[1] for p in paths)


def test_long_article_is_split_with_header_repeated():
    lines = "\n".join(f"（{n}）" + "生产经营单位应当落实安全生产责任制并开展隐患排查治理。" * 3 for n in "一二三四五六七八九十")
    text = f"# 测试条例\n\n<!-- INFO END -->\n\n## 第一章 总则\n\n第一条 为了测试，制定本条例。\n\n第二条 下列事项应当办理：\n{lines}\n"
    doc = SourceDocument(title="测试条例", text=text, kind=DocKind.LAW, path="x.md")
    parts = [c for c in split_document(doc, max_chars=300) if c.article_no == 2]
    assert len(parts) > 1
    assert all(p.text.startswith("第二条 下列事项应当办理") for p in parts)
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))


def test_speech_chunks_carry_outline_path():
    doc = load_document(LIB / "speeches" / "在2025年全区安全隐患整改工作调度会上的讲话.txt")
    assert doc.kind == DocKind.OUTLINE
    chunks = split_document(doc)
    c = next(c for c in chunks if c.text.startswith("(一)开展拉网排查"))
    assert c.heading_path[0].startswith("一、深化思想认识")  # the source omits the 二、 marker
    assert c.heading_path[-1] == "(一)开展拉网排查,建立精准动态的管理台账"
    assert c.article is None


def test_speech_sub_points_yishi_become_headings():
    text = "一、总体要求\n一是要全力整治重大火灾隐患。这是当前工作的重中之重，必须抓紧抓实。\n二是要系统治理身边多发频发的安全隐患。要高度关注电动自行车。\n"
    doc = SourceDocument(title="测试讲话", text=text, kind=DocKind.OUTLINE, path="t.txt")
    chunks = split_document(doc)
    assert [c.heading_path for c in chunks] == [
        ("一、总体要求", "一是要全力整治重大火灾隐患"),
        ("一、总体要求", "二是要系统治理身边多发频发的安全隐患"),
    ]
    assert chunks[0].text.startswith("一、总体要求\n一是")  # the stand-alone heading travels with its paragraph


def test_long_paragraph_split_at_sentences_with_overlap():
    sentence = "各地要压紧压实属地管理责任，逐一排查整治各类隐患。"
    doc = SourceDocument(title="测试讲话", text=sentence * 40, kind=DocKind.OUTLINE, path="t.txt")
    chunks = split_document(doc, max_chars=300)
    assert len(chunks) > 1
    assert all(len(c.text) <= 300 + len(sentence) for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
