"""/help and /start: what the bot can do, in a few lines."""
from __future__ import annotations

from bot.types import Incoming, Reply

HELP_TEXT = """我是安全生产值守助手，可以：
· 解答安全生产法律法规和本地文件的问题，答复均注明出处；
  直接提问即可，如“安全生产法第二十一条讲什么”“九小场所是哪些”
· /ask 问题 —— 提问（在群里请 @我 或用 /ask）
· /article 法规名 条号 —— 查看条文全文，如 /article 安全生产法 第二十一条
· /help —— 显示本说明
知识库里没有的内容我会直接说明，不会编造。"""


def handle(incoming: Incoming, services, args: str) -> list[Reply]:
    return [Reply(HELP_TEXT)]
