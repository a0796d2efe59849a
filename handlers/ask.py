"""Questions on laws, regulations, local plans and duties: answered from the knowledge base."""
from __future__ import annotations

import logging

from bot.types import Incoming, Reply
from knowledge.types import Answer

log = logging.getLogger(__name__)


def render(answer: Answer) -> Reply:
    return Reply(answer.text)


def handle(incoming: Incoming, services, args: str) -> list[Reply]:
    question = args.strip()
    if not question:
        return [Reply("请在 /ask 后面写上问题，例如：/ask 厂里出了事故多久要报告？")]
    limit = services.config.knowledge.max_question_chars
    if len(question) > limit:
        log.info("question too long (%d chars) from %s/%s", len(question), incoming.channel, incoming.user)
        return [Reply(f"问题太长了（{len(question)} 字），请精简到 {limit} 字以内，一次问一件事。")]
    return [render(services.kb.ask(question))]


def article(incoming: Incoming, services, args: str) -> list[Reply]:
    if not args.strip():
        return [Reply("请写明法规名称和条号，例如：/article 安全生产法 第二十一条")]
    return [render(services.kb.article(args, full=True))]
