"""Is a question inside what the knowledge base covers? Two checks before any evidence is weighed:

- a question about a document the library does not hold (刑法, 劳动合同法, a GB standard ...) is
  declined by name rather than answered from whatever passage looks closest;
- a question far from every safety topic and close to an everyday non-safety topic (tax, pensions,
  marriage, weather ...) is declined. The topics are short descriptions embedded once with the
  configured model; the check compares the question's similarity to the two sets.
"""
from __future__ import annotations

import re

import numpy as np

from knowledge import vocabulary

# Well-known laws and codes that are not in the bundled library. A question asking what they say
# must not be answered from a safety regulation that merely looks similar.
FOREIGN_LAWS: tuple[str, ...] = (
    "刑法", "民法典", "劳动法", "劳动合同法", "社会保险法", "个人所得税法", "税收征收管理法", "婚姻法",
    "公务员法", "职业病防治法", "矿山安全法", "环境保护法", "行政处罚法", "行政许可法", "刑事诉讼法",
    "民事诉讼法", "治安管理处罚法", "建筑法", "产品质量法", "消费者权益保护法", "森林法", "防洪法",
    "安全生产事故隐患排查治理暂行规定", "重大火灾隐患判定方法", *vocabulary.OTHER_LAW_NAMES,
)
_STANDARD_RE = re.compile(r"\b(?:GB|GB/T|AQ|XF|JGJ|DB\d*)\s*/?\s*T?\s*\d{3,}", re.I)
_BOOK_TITLE_RE = re.compile(r"《([^》]{2,40})》")

SAFETY_TOPICS = (
    "安全生产责任制和生产经营单位的安全管理",
    "生产安全事故的报告、调查和处理",
    "事故隐患排查治理和整改",
    "消防安全、火灾预防和灭火救援",
    "危险化学品的生产、储存、运输和使用",
    "烟花爆竹的生产、经营、运输和燃放",
    "城镇燃气的经营、使用和燃气设施保护",
    "特种设备如电梯、锅炉、压力容器、起重机械的安全",
    "建设工程施工现场的安全",
    "工伤认定、工伤保险待遇和劳动能力鉴定",
    "应急预案、应急救援和生产安全事故应急",
    "突发事件的预防、预警和应对处置",
    "道路交通安全、机动车和非机动车通行",
    "安全生产许可证的申领和管理",
    "政府安全生产工作会议讲话、专项整治行动部署",
    "从业人员的安全生产权利和义务、劳动防护用品和教育培训",
)
OTHER_TOPICS = (
    "个人所得税、增值税和发票等税务问题",
    "养老保险、医疗保险、医保报销和社保缴费",
    "结婚、离婚、继承和家庭纠纷",
    "劳动合同、试用期、加班工资和辞职辞退",
    "公务员招录、考核、职级晋升和人事管理",
    "天气预报、气温和降雨",
    "买房、房贷、房产证和租房",
    "上学、入学、考试和招生",
    "看病挂号、医院就诊",
    "户口、身份证、护照和签证办理",
    "旅游、美食、娱乐和体育比赛",
    "股票、基金、理财和银行贷款",
    "刑事犯罪的定罪量刑和刑期",
)


def foreign_reference(question: str, library_titles: set[str]) -> str | None:
    """The name of a document the question asks about that the library does not hold."""
    standard = _STANDARD_RE.search(question)
    if standard:
        return standard.group(0)
    for title in _BOOK_TITLE_RE.findall(question):
        bare = title.strip()
        if bare not in library_titles and vocabulary.resolve_law_alias(bare) is None:
            return bare
    if vocabulary.resolve_law_alias(question) is None:
        for name in FOREIGN_LAWS:
            if name in question:
                return name
    return None


class TopicGate:
    """Similarity margin between the nearest safety topic and the nearest other topic."""

    def __init__(self, embedder) -> None:
        self._safety = embedder.embed_passages(list(SAFETY_TOPICS))
        self._other = embedder.embed_passages(list(OTHER_TOPICS))

    def margin(self, query_vector: np.ndarray) -> float:
        return float((self._safety @ query_vector).max() - (self._other @ query_vector).max())


# A question that asks for a quantity in some unit can only be answered by a passage that states a
# quantity in that unit ("罚多少钱" needs 元; "多少学时" needs 学时). (question pattern, passage pattern)
QUANTITY_UNITS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"多少钱|罚多少|交多少|赔多少|多少费用|多少万|预算是?多少|经费是?多少"), re.compile(r"元|倍")),
    (re.compile(r"(?:电话|号码|热线)(?:是)?多少|打什么电话|电话号"), re.compile(r"\d{3,}|[一二三四五六七八九零〇]{3,}")),
    (re.compile(r"(?:几|多少)个?(?:小时|学时|课时)"), re.compile(r"小时|学时|课时")),
    (re.compile(r"(?:几|多少)个?月"), re.compile(r"个月|月内|月以")),
    (re.compile(r"(?:几|多少)年"), re.compile(r"年")),
    (re.compile(r"比例|百分之|占比"), re.compile(r"%|％|百分之|比例|分之")),
    (re.compile(r"多远|多少米|几米"), re.compile(r"米")),
)


def missing_quantity(question: str, passages: list[str]) -> bool:
    """True when the question asks for an amount in a unit that none of the passages mention."""
    text = "".join(passages)
    for asks, states in QUANTITY_UNITS:
        if asks.search(question) and not states.search(text):
            return True
    return False
