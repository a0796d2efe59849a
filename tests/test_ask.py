"""Questions answered from the bundled knowledge base: look-up, aliases, glossary, refusal."""
import pytest

from knowledge.answer import AnswerStyle, best_sentences


def test_article_lookup_by_full_title(bundled_kb):
    answer = bundled_kb.ask("中华人民共和国安全生产法第二十一条讲什么")
    assert answer.answered and answer.mode == "lookup"
    assert answer.citations[0].source == "中华人民共和国安全生产法"
    assert answer.citations[0].article == "第二十一条"
    assert "生产经营单位的主要负责人对本单位安全生产工作负有下列职责" in answer.text


@pytest.mark.parametrize(
    "question, title, article",
    [
        ("新安法第二十一条", "中华人民共和国安全生产法", "第二十一条"),
        ("安法第21条说了啥", "中华人民共和国安全生产法", "第二十一条"),
        ("消防法第十六条", "中华人民共和国消防法", "第十六条"),
        ("特种设备安全监察条例第二条", "特种设备安全监察条例", "第二条"),
    ],
)
def test_article_lookup_by_alias(bundled_kb, question, title, article):
    answer = bundled_kb.ask(question)
    assert (answer.citations[0].source, answer.citations[0].article) == (title, article)


def test_free_question_cites_its_source(bundled_kb):
    answer = bundled_kb.ask("生产经营单位发生生产安全事故后，事故现场有关人员应当立即报告本单位负责人吗")
    assert answer.answered
    assert answer.citations and answer.citations[0].source
    assert "《" in answer.text and "》" in answer.text


def test_glossary_term_is_explained_with_corpus_source(bundled_kb):
    answer = bundled_kb.ask("三管三必须是哪三管")
    assert answer.answered
    assert "【三管三必须】" in answer.text
    assert "管行业必须管安全" in answer.text


def test_question_about_a_law_outside_the_library_is_declined(bundled_kb):
    answer = bundled_kb.ask("刑法里重大责任事故罪一般判几年？")
    assert not answer.answered
    assert "《刑法》" in answer.text


def test_question_about_another_countrys_rules_is_declined(bundled_kb):
    answer = bundled_kb.ask("德国的工厂出了安全事故，要在多长时间内报告？")
    assert not answer.answered
    assert "德国的规定" in answer.text and "《" not in answer.text.splitlines()[0]


def test_work_abroad_for_a_chinese_employer_is_not_another_countrys_rules(bundled_kb):
    answer = bundled_kb.ask("公司派我去国外项目干活，在那边受伤了，国内工伤还认不认？")
    assert answer.answered
    assert "工伤保险条例" in answer.text


def test_question_with_no_evidence_is_declined(bundled_kb):
    answer = bundled_kb.ask("周杰伦演唱会门票多少钱")
    assert not answer.answered
    assert "知识库" in answer.text


def test_question_for_an_amount_no_passage_states_is_declined(bundled_kb):
    answer = bundled_kb.ask("新员工岗前安全培训最少要多少个学时？")
    assert not answer.answered


def test_empty_question_gets_a_hint(bundled_kb):
    assert not bundled_kb.ask("   ").answered


def test_reply_fits_the_chat_limit(bundled_kb):
    style = bundled_kb.style
    for question in ("危险化学品的储存有哪些要求", "事故调查报告应当包括哪些内容", "安全生产法第一百一十四条"):
        assert len(bundled_kb.ask(question).text) <= style.max_reply_chars


def test_full_article_on_request_is_not_truncated(bundled_kb):
    answer = bundled_kb.article("安全生产法 第二十一条", full=True)
    assert "（七）及时、如实报告生产安全事故。" in answer.text


def test_unknown_article_is_reported(bundled_kb):
    answer = bundled_kb.article("安全生产法 第九百条")
    assert not answer.answered and "没有找到" in answer.text


def test_best_sentences_prefers_the_sentence_with_the_question_terms():
    text = "第一句讲总则。从业人员在一百人以下的，应当配备专职或者兼职的安全生产管理人员。最后一句无关。"
    assert best_sentences(text, ["一百人", "兼职"]) == "从业人员在一百人以下的，应当配备专职或者兼职的安全生产管理人员。"


def test_answer_style_defaults_match_config():
    from bot.config import AnswerSettings

    assert AnswerStyle().min_confidence == AnswerSettings().min_confidence


def test_bare_article_number_after_law_name(bundled_kb):
    answer = bundled_kb.ask("消防法63条说了啥")
    assert answer.mode == "lookup" and answer.citations[0].article == "第六十三条"


def test_bare_number_without_law_is_not_an_article(bundled_kb):
    retrieval = bundled_kb.search("隐患排查有哪3条要求")
    assert not retrieval.exact and retrieval.query.article_no is None


def test_question_for_a_phone_number_no_passage_states_is_declined(bundled_kb):
    assert not bundled_kb.ask("区应急管理局的值班电话是多少").answered


def test_rank_fusion_is_available(bundled_kb):
    from dataclasses import replace

    settings = replace(bundled_kb.retrieval_settings, fusion="rank")
    from knowledge.retrieve import retrieve

    hits = retrieve(bundled_kb.index, "生产经营单位的主要负责人的安全生产职责", 5, settings).hits
    assert hits and all(h.score > 0 for h in hits)


def test_item_quote_carries_its_lead_in():
    from knowledge.answer import _with_lead_in

    text = "第十八条 燃气经营者不得有下列行为：\n（一）拒绝向市政燃气管网覆盖范围内符合用气条件的单位或者个人供气；\n（二）倒卖、抵押、出租燃气经营许可证；"
    assert _with_lead_in(text, "（二）倒卖、抵押、出租燃气经营许可证；").startswith("第十八条 燃气经营者不得有下列行为：……（二）")
