"""/help and /start: what the bot can do, in a few lines."""
from __future__ import annotations

from bot.types import Incoming, Reply

HELP_TEXT = """我是安全生产值守助手，可以：
【问】解答安全生产法律法规和本地文件的问题，答复均注明出处
· 直接提问，如“安全生产法第二十一条讲什么”“九小场所是哪些”（群里请 @我 或用 /ask）
· /article 法规名 条号 —— 查看条文全文，如 /article 安全生产法 第二十一条
【报】随手拍举报隐患
· /report 或发“我要举报”、直接发照片 —— 按提示填写，随时 /cancel 取消
· /query 回执码 密码 —— 查询自己举报的办理进度；/myreports —— 我的举报
【办】干部（需先 /bind 绑定码 绑定身份）
· /mine、/unit [逾期|重大|待核实|类别] —— 我的 / 本单位隐患
· /hazard 编号 —— 查看详情；/accept /start /submit /close /return /reject /dup /reopen —— 办理
【值】值班（需绑定身份）
· “今天谁值班”“国庆谁带班”、/duty [日期] —— 查值班表；值班当天发“到岗”或 /checkin 签到
· /swap 日期 原值班人 新值班人 —— 调班（管理员）
· /sv —— 我的督办事项；/sv add 事项 负责人=姓名 时限=日期；/sv done 编号
· /bindgroup 群名称 —— 在群里发送，让该群接收对应的群推送；/groups 查看（管理员）
整改时限、值班提醒、到岗催办和周报由系统按时推送。
知识库里没有的内容我会直接说明，不会编造。"""


def handle(incoming: Incoming, services, args: str) -> list[Reply]:
    return [Reply(HELP_TEXT)]
