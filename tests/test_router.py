"""The chat core: routing table, bad input, group etiquette."""
from bot.router import parse_command, route, safe_route
from tests.conftest import make_incoming


def test_free_text_goes_to_the_question_handler(services, incoming):
    [reply] = safe_route(incoming("安全生产法第三条讲什么"), services)
    assert "《中华人民共和国安全生产法》第三条" in reply.text


def test_help_lists_commands(services, incoming):
    [reply] = safe_route(incoming("/help"), services)
    assert "/ask" in reply.text and "/article" in reply.text


def test_ask_command_with_bot_suffix(services, incoming):
    [reply] = safe_route(incoming("/ask@safeduty_bot 消防法第十六条"), services)
    assert "第十六条" in reply.text


def test_article_command_shows_whole_article(services, incoming):
    [reply] = safe_route(incoming("/article 新安法 第二十一条"), services)
    assert "（七）及时、如实报告生产安全事故。" in reply.text


def test_unknown_command_is_explained(services, incoming):
    [reply] = safe_route(incoming("/frobnicate"), services)
    assert "没有 /frobnicate 这个命令" in reply.text


def test_oversized_message_is_refused_politely(services, incoming):
    [reply] = safe_route(incoming("安" * 9000), services)
    assert "太长" in reply.text


def test_long_question_over_question_limit_is_refused(services, incoming):
    [reply] = safe_route(incoming("/ask " + "隐" * 4500), services)
    assert "太长" in reply.text


def test_binary_message_is_refused(services, incoming):
    [reply] = safe_route(incoming("\x00\x01\x02\x03garbage\x04\x05"), services)
    assert "无法识别" in reply.text


def test_group_chatter_not_addressed_to_bot_is_ignored(services, incoming):
    assert safe_route(incoming("大家好", is_group=True, mentioned=False), services) == []


def test_group_message_mentioning_bot_is_answered(services, incoming):
    replies = safe_route(incoming("安全生产法第三条", is_group=True, mentioned=True), services)
    assert replies and "第三条" in replies[0].text


def test_handler_crash_becomes_an_apology(services, incoming, monkeypatch):
    def boom(*_):
        raise RuntimeError("kaput")

    monkeypatch.setattr(services.kb, "ask", boom)
    [reply] = safe_route(incoming("随便问问"), services)
    assert "出错" in reply.text


def test_chinese_alias_for_article_command():
    assert parse_command("全文 安全生产法 第三条") == ("article", "安全生产法 第三条")


def test_unsupported_message_type_gets_a_note_naming_it(services, caplog):
    from bot.types import Attachment

    with caplog.at_level("INFO", logger="bot.router"):
        replies = route(make_incoming(attachments=(Attachment(kind="voice"),)), services)
    assert replies[0].text.startswith("暂不支持语音。") and "照片" in replies[0].text
    assert "unsupported message type(s) voice" in caplog.text


def test_unsupported_type_in_a_group_without_mention_is_ignored(services):
    from bot.types import Attachment

    incoming = make_incoming(attachments=(Attachment(kind="sticker"),), is_group=True, mentioned=False)
    assert route(incoming, services) == []
