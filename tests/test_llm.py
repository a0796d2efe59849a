"""knowledge.llm: prompt building, grounding checks and fallbacks, against a local fake OpenAI server."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from bot.config import LLMSettings
from knowledge import llm
from knowledge.llm import llm_answer
from knowledge.types import Chunk, Hit
from tests.fake_openai import FakeOpenAI, Reply, fake_openai  # noqa: F401  (fixture)

LAW = "中华人民共和国安全生产法"
ART21 = (
    "第二十一条 生产经营单位的主要负责人对本单位安全生产工作负有下列职责:\n"
    "（一）建立健全并落实本单位全员安全生产责任制，加强安全生产标准化建设；\n"
    "（二）组织制定并实施本单位安全生产规章制度和操作规程；\n"
    "（三）组织制定并实施本单位安全生产教育和培训计划；\n"
    "（四）保证本单位安全生产投入的有效实施；\n"
    "（五）组织建立并落实安全风险分级管控和隐患排查治理双重预防工作机制，督促、检查本单位的安全生产工作，"
    "及时消除生产安全事故隐患；\n"
    "（六）组织制定并实施本单位的生产安全事故应急救援预案；\n"
    "（七）及时、如实报告生产安全事故。"
)
ART22 = (
    "第二十二条 生产经营单位的全员安全生产责任制应当明确各岗位的责任人员、责任范围和考核标准等内容。\n"
    "生产经营单位应当建立相应的机制，加强对全员安全生产责任制落实情况的监督考核，保证全员安全生产责任制的落实。"
)
ART24 = (
    "第二十四条 矿山、金属冶炼、建筑施工、运输单位和危险物品的生产、经营、储存、装卸单位，"
    "应当设置安全生产管理机构或者配备专职安全生产管理人员。"
)
QUESTION = "生产经营单位主要负责人有哪些安全生产职责？"
GOOD = "主要负责人应建立健全并落实全员安全生产责任制[1]，并及时、如实报告生产安全事故[1]。"


def _hit(article: str, number: int, text: str, score: float = 1.0) -> Hit:
    chunk = Chunk(LAW, text, 0, len(text), ("第二章 生产经营单位的安全生产保障",), article, number)
    return Hit(chunk, score)


HITS = [_hit("第二十一条", 21, ART21), _hit("第二十二条", 22, ART22, 0.8), _hit("第二十四条", 24, ART24, 0.6)]


def _settings(fake: FakeOpenAI, **kw) -> LLMSettings:
    return LLMSettings(enabled=True, base_url=fake.base_url, model="fake-model", timeout_seconds=2.0, **kw)


def _ask(fake: FakeOpenAI, reply: str | Reply, hits=HITS, **kw):
    fake.reply(reply)
    return llm_answer(QUESTION, hits, _settings(fake, **kw))


def test_grounded_answer_is_accepted_with_its_citation(fake_openai):
    answer = _ask(fake_openai, GOOD)
    assert answer is not None and answer.answered and answer.mode == "llm"
    assert answer.text.startswith(GOOD)
    assert answer.text.endswith("依据：\n[1] 《中华人民共和国安全生产法》第二十一条")
    assert len(answer.citations) == 1
    cite = answer.citations[0]
    assert (cite.source, cite.article, cite.text) == (LAW, "第二十一条", ART21)
    assert cite.heading_path == ("第二章 生产经营单位的安全生产保障",)


def test_hallucinated_law_citation_is_rejected(fake_openai, caplog):
    reply = "主要负责人失职造成事故的，依照《中华人民共和国刑法》第一百三十四条追究刑事责任[1]。"
    with caplog.at_level(logging.WARNING, logger="knowledge.llm"):
        assert _ask(fake_openai, reply) is None
    assert "《中华人民共和国刑法》第一百三十四条" in caplog.text


def test_article_not_among_passages_is_rejected_in_arabic_form(fake_openai):
    assert _ask(fake_openai, "依照《中华人民共和国安全生产法》第99条处理[1]。") is None


def test_article_in_arabic_form_matching_a_passage_is_accepted(fake_openai):
    answer = _ask(fake_openai, "《安全生产法》第21条规定了主要负责人的七项职责[1]。")
    assert answer is not None and answer.citations[0].article == "第二十一条"


def test_marker_outside_passages_is_rejected(fake_openai, caplog):
    with caplog.at_level(logging.WARNING, logger="knowledge.llm"):
        assert _ask(fake_openai, "主要负责人应当落实全员安全生产责任制[7]。") is None
    assert "[7]" in caplog.text


def test_reply_without_markers_is_rejected(fake_openai):
    assert _ask(fake_openai, "主要负责人应当落实全员安全生产责任制。") is None


def test_empty_reply_is_rejected(fake_openai):
    assert _ask(fake_openai, "  \n ") is None


def test_server_error_falls_back(fake_openai, caplog):
    with caplog.at_level(logging.WARNING, logger="knowledge.llm"):
        assert _ask(fake_openai, Reply(status=500)) is None
    assert "failed" in caplog.text


def test_rate_limit_falls_back_without_retrying(fake_openai):
    assert _ask(fake_openai, Reply(status=429)) is None
    assert len(fake_openai.chat_requests) == 1  # max_retries=0


def test_slow_server_falls_back_after_timeout(fake_openai):
    fake_openai.reply(Reply(GOOD, delay=2.0))
    assert llm_answer(QUESTION, HITS, LLMSettings(base_url=fake_openai.base_url, timeout_seconds=0.5)) is None


def test_unreachable_server_falls_back():
    with FakeOpenAI() as fake:
        settings = _settings(fake)
    assert llm_answer(QUESTION, HITS, settings) is None


def test_prompt_contains_passages_labels_and_question(fake_openai):
    _ask(fake_openai, GOOD)
    request = fake_openai.chat_requests[-1]
    system, user = request.body["messages"]
    assert system["role"] == "system" and "知识库中没有相关规定" in system["content"]
    assert QUESTION in user["content"]
    for i, hit in enumerate(HITS, 1):
        assert f"[{i}] {hit.chunk.citation()}\n{hit.chunk.text}" in user["content"]
    assert request.body["model"] == "fake-model"


def test_prompt_holds_at_most_five_passages(fake_openai):
    hits = [_hit(f"第{n}条", n, f"第{n}条 测试条文{n}。") for n in range(1, 8)]
    _ask(fake_openai, GOOD, hits=hits)
    prompt = fake_openai.chat_requests[-1].text
    assert "测试条文5" in prompt and "测试条文6" not in prompt and "[6]" not in prompt


def test_not_covered_reply_is_an_unanswered_answer(fake_openai):
    """The model read the passages and found no answer: the caller declines instead of quoting one."""
    answer = _ask(fake_openai, "知识库中没有相关规定。")
    assert answer is not None and not answer.answered


def test_partly_covered_reply_falls_back(fake_openai, caplog):
    """An answer that cites a passage but says part is not covered: the extractive answer is sent."""
    with caplog.at_level(logging.WARNING, logger="knowledge.llm"):
        assert _ask(fake_openai, "主要负责人要组织制定规章制度[1]，其余知识库中没有相关规定。") is None
    assert "do not cover" in caplog.text


def test_think_blocks_are_stripped(fake_openai):
    reply = "<think>\n也许可以引用《中华人民共和国刑法》第一百三十四条[9]……\n</think>\n\n" + GOOD
    answer = _ask(fake_openai, reply)
    assert answer is not None
    assert "think" not in answer.text and "刑法" not in answer.text
    assert answer.text.startswith(GOOD)


def test_unterminated_think_block_is_rejected(fake_openai):
    assert _ask(fake_openai, "<think>先看资料[1]，主要负责人") is None


def test_citations_follow_marker_order_and_are_renumbered(fake_openai):
    answer = _ask(fake_openai, "应设置安全生产管理机构【3】；责任制应明确考核标准[2]，并落实责任制［3，2］。")
    assert answer is not None
    assert [c.article for c in answer.citations] == ["第二十四条", "第二十二条"]
    assert answer.text.startswith("应设置安全生产管理机构[1]；责任制应明确考核标准[2]，并落实责任制[1][2]。")
    assert "[1] 《中华人民共和国安全生产法》第二十四条\n[2] 《中华人民共和国安全生产法》第二十二条" in answer.text


def test_api_key_is_read_from_the_named_environment_variable(fake_openai, monkeypatch):
    monkeypatch.setenv("SAFEDUTY_TEST_LLM_KEY", "sk-test-123")
    _ask(fake_openai, GOOD, api_key_env="SAFEDUTY_TEST_LLM_KEY")
    assert fake_openai.chat_requests[-1].headers.get("authorization") == "Bearer sk-test-123"


def test_client_is_cached_per_settings(fake_openai):
    settings = _settings(fake_openai)
    fake_openai.reply(GOOD, GOOD)
    llm_answer(QUESTION, HITS, settings)
    first = llm._client(settings)
    llm_answer(QUESTION, HITS, settings)
    assert llm._client(settings) is first
    assert llm._client(_settings(fake_openai, temperature=0.7)) is not first


def test_no_hits_means_no_call(fake_openai):
    assert llm_answer(QUESTION, [], _settings(fake_openai)) is None
    assert fake_openai.chat_requests == []


def test_fake_embeddings_are_deterministic(fake_openai):
    import openai

    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)
    a = client.embeddings.create(model="e", input=["安全", "生产"]).data
    b = client.embeddings.create(model="e", input="安全", encoding_format="float").data
    assert len(a) == 2 and len(a[0].embedding) == fake_openai.embedding_dim
    assert a[0].embedding == pytest.approx(b[0].embedding, abs=1e-6)
    assert a[0].embedding != a[1].embedding


def test_importing_the_module_does_not_import_langchain_openai():
    code = "import sys, knowledge.llm; print('langchain_openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
