"""The optional LLM answer inside the full ask flow: grounded answers pass, anything else falls back."""
import pytest

from bot.config import LLMSettings
from knowledge.base import KnowledgeBase
from tests.fake_openai import FakeOpenAI

QUESTION = "生产经营单位的主要负责人有哪些安全生产职责"


@pytest.fixture
def kb_with_llm(bundled_kb):
    with FakeOpenAI() as fake:
        settings = LLMSettings(enabled=True, base_url=fake.base_url, model="fake", timeout_seconds=2)
        kb = KnowledgeBase(bundled_kb.index, bundled_kb.style, llm_settings=settings)
        yield kb, fake


def test_grounded_llm_answer_is_used(kb_with_llm):
    kb, fake = kb_with_llm
    fake.reply("主要负责人要建立健全全员安全生产责任制并组织制定规章制度[1]。")
    answer = kb.ask(QUESTION)
    assert answer.mode == "llm"
    assert answer.citations and answer.citations[0].source


def test_hallucinated_citation_falls_back_to_extractive(kb_with_llm):
    kb, fake = kb_with_llm
    fake.reply("依据《中华人民共和国刑法》第一百三十四条，负责人要坐牢[1]。")
    answer = kb.ask(QUESTION)
    assert answer.mode == "extractive"
    assert "刑法" not in answer.text


def test_llm_server_error_falls_back_to_extractive(kb_with_llm):
    from tests.fake_openai import Reply

    kb, fake = kb_with_llm
    fake.reply(Reply(status=500))
    assert kb.ask(QUESTION).mode == "extractive"


def test_llm_finding_no_answer_in_the_passages_declines(kb_with_llm):
    kb, fake = kb_with_llm
    fake.reply("知识库中没有相关规定")
    answer = kb.ask(QUESTION)
    assert not answer.answered and answer.mode == "refusal"
    assert "知识库里没有找到" in answer.text and fake.chat_requests


def test_llm_is_not_consulted_for_refusals(kb_with_llm):
    kb, fake = kb_with_llm
    assert not kb.ask("刑法里重大责任事故罪判几年").answered
    assert fake.chat_requests == []


def test_failed_llm_call_is_retried_on_the_next_ask(kb_with_llm):
    """An extractive stand-in for a failed LLM call is not cached: the next ask tries the LLM again."""
    from tests.fake_openai import Reply

    kb, fake = kb_with_llm
    fake.reply(Reply(status=500))
    assert kb.ask(QUESTION).mode == "extractive"
    fake.reply("主要负责人要建立健全全员安全生产责任制并组织制定规章制度[1]。")
    assert kb.ask(QUESTION).mode == "llm"
