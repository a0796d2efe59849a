"""Question-type signals in retrieval and refusal: what a question asks for (a duration, a sanction,
a definition, an amount) steers ranking, and an amount must be stated next to what is asked about."""

import pytest

from knowledge.retrieve import RetrievalSettings, retrieve
from knowledge.scope import foreign_reference, missing_quantity, quantity_anchors


def never_common(word: str) -> bool:
    return False


def test_anchors_drop_the_question_word_and_its_unit():
    anchors = quantity_anchors("我们镇今年一共拨了多少安全生产专项经费", [], never_common)
    assert "专项经费" in anchors
    assert not any("多少" in a or a in {"今年", "一共"} for a in anchors)
    assert quantity_anchors("灭火器放在哪里", [], never_common) is None  # no amount asked


def test_anchors_leave_out_words_common_in_the_library():
    anchors = quantity_anchors("安全生产许可证有效期几年", [], lambda w: w in {"安全", "生产"})
    assert "有效期" in anchors and "安全" not in anchors


def test_amount_must_stand_next_to_the_subject():
    question = "企业的安全生产许可证有效期是几年？"
    anchors = quantity_anchors(question, [], never_common)
    near = "安全生产许可证的有效期为3年。"
    far = "本条例自2004年1月13日起施行。" + "其他内容" * 20 + "有效期"
    assert not missing_quantity(question, [near], anchors)
    assert missing_quantity(question, [far], anchors)


def test_a_year_in_a_date_is_not_a_duration():
    question = "电梯用满多少年必须报废？"
    anchors = quantity_anchors(question, [], never_common)
    assert missing_quantity(question, ["2016年，全市电梯报废工作全面推开。"], anchors)


def test_vague_few_days_is_not_a_quantity_question():
    # "请了几天假" says how long, it does not ask it
    assert not missing_quantity("我去参加防汛抢险请了几天假，单位能扣我工资吗？", ["无关段落"], frozenset())
    assert missing_quantity("事故报告要在多少天内补报？", ["无关段落"], frozenset())


def test_a_fine_does_not_answer_a_fee_question_but_answers_a_fine_question():
    passage = "未取得危险化学品经营许可证从事经营的，处10万元以上20万元以下的罚款。"
    fee = "办危险化学品经营许可证要交多少钱？"
    fine = "没有危险化学品经营许可证就经营，要罚多少钱？"
    assert missing_quantity(fee, [passage], quantity_anchors(fee, [], never_common))
    assert not missing_quantity(fine, [passage], quantity_anchors(fine, [], never_common))



def test_any_measure_word_asks_for_a_number_in_that_unit():
    question = "室内消火栓的出水压力至少要多少兆帕？"
    anchors = quantity_anchors(question, [], never_common)
    assert "兆帕" not in anchors  # the unit asked for says nothing about what the number is about
    assert missing_quantity(question, ["消火栓应当保持完好有效，出水压力符合要求。"], anchors)
    assert not missing_quantity(question, ["室内消火栓的出水压力不应低于0.35兆帕。"], anchors)
    assert not missing_quantity(question, ["室内消火栓的出水压力不应低于0.35MPa。"], anchors)  # as a symbol


@pytest.mark.parametrize("question, named", [
    ("按GB 2894的要求，禁止标志是什么颜色？", "GB 2894"),  # right after a Chinese character
    ("GB/T 29639里应急预案分几部分", "GB/T 29639"),
    ("日本的消防法规定家里必须装烟感吗", "日本的规定"),
    ("按生产经营单位安全培训规定，新员工岗前培训要多少学时", "生产经营单位安全培训规定"),
    ("女职工劳动保护特别规定里产假是多少天", "女职工劳动保护特别规定"),
    ("《矿山安全法》对矿井安全出口有什么要求", "矿山安全法"),  # its 安全法 is not an alias of 安全生产法
    ("民用爆炸物品安全管理条例对买炸药有啥要求", "民用爆炸物品安全管理条例"),  # named without 《》
    ("特种设备安全监察条例规定电梯多久检验一次", None),
    ("按规定厂里要配几个安全员", None),
    ("单位内部的规章制度规定的事，工人不听怎么办", None),
])
def test_a_document_the_library_lacks_is_named(question, named):
    assert foreign_reference(question, set()) == named


def test_counting_words_stay_loose():
    """'分几层' is answered by '四级', so counting words (层, 级, 次 ...) accept any counted number."""
    question = "网格化监管要分几层？"
    anchors = quantity_anchors(question, [], never_common)
    assert not missing_quantity(question, ["网格化监管分市、镇街、村居四级。"], anchors)


def test_a_count_of_people_needs_a_stated_count():
    question = "乡镇安监站要配几个专职安监员？"
    anchors = quantity_anchors(question, [], never_common)
    assert missing_quantity(question, ["乡镇要配足专职安监员，加强队伍建设。"], anchors)
    assert not missing_quantity(question, ["每个乡镇安监站配备2名以上专职安监员。"], anchors)


# (question, a passage about its subject that does not state what is asked, one that does)
STATED_NEXT_TO_THE_SUBJECT = [
    pytest.param("电动自行车充电棚的补贴什么时候开始申报？", "鼓励建设电动自行车集中充电设施，给予适当补贴。",
                 "电动自行车充电棚补贴自3月1日起开始申报。", id="a date"),
    pytest.param("县长那次讲话是哪天讲的？", "一、强化认识，心中牢记安全。要在2月底前完成整治。",
                 "(二○○七年一月二十九日)\n一、强化认识，心中牢记安全", id="a speech's dateline"),
    pytest.param("县消防救援大队的大队长现在是谁？", "县消防救援大队负责辖区火灾扑救和联合检查。",
                 "由张某某同志任县消防救援大队大队长，负责联合检查。", id="who holds a post"),
    pytest.param("化工园区那次事故，调查组组长是哪位领导？", "事故调查组组长由负责事故调查的人民政府指定。",
                 "化工园区事故调查组由李某某同志任组长。", id="which official"),
    pytest.param("举报隐患的那个小程序叫啥名字？", "任何单位或者个人对事故隐患，均有权向负有监督管理职责的部门报告或者举报。",
                 "开通隐患举报小程序，群众可随手拍举报隐患。", id="the name of an app"),
    pytest.param("企业安全生产标准化达标评审要考到多少分才算通过？", "全市已有315家企业完成安全生产标准化达标评审。",
                 "安全生产标准化达标评审得分在70分以上的，评为三级。", id="the unit asked for, not another count"),
    pytest.param("血液里酒精含量到多少毫克算醉酒驾驶？", "醉酒驾驶机动车的，由公安机关交通管理部门约束至酒醒。",
                 "血液中的酒精含量大于或者等于80mg/100ml的，为醉酒驾驶。", id="milligrams"),
    pytest.param("罚了款还不整改，按日连续处罚从哪天起算？", "拒不整改的，可以按日连续处罚。",
                 "拒不整改的，自作出责令改正之日的次日起按日连续处罚。", id="a date relative to an event"),
    pytest.param("镇里的应急避难场所具体在哪个位置？", "县级以上人民政府应当统筹规划应急避难场所。",
                 "镇应急避难场所设在人民路文化广场。", id="a street address"),
    pytest.param("下污水井前硫化氢浓度要低于多少才能作业？", "作业前应当对污水井内硫化氢进行检测，确认安全后方可作业。",
                 "污水井内硫化氢浓度低于10mg/m³方可作业。", id="a concentration"),
    pytest.param("燃气公司多长时间上门安检一次？", "燃气公司应当定期上门安检，并作出记录。",
                 "燃气公司应当每年至少上门安检一次。", id="how often, not 定期"),
    pytest.param("橙色预警是第几级？", "预警信号用红、橙、黄、蓝四种颜色标示。",
                 "预警级别分为一级、二级、三级和四级，橙色预警为二级。", id="which rank, as N级"),
    pytest.param("十级伤残能拿多少补助金？", "伤残职工按伤残等级享受一次性伤残补助金。",
                 "十级伤残的一次性伤残补助金为7个月的本人工资。", id="a benefit in months of wages"),
]


@pytest.mark.parametrize("question, silent, stating", STATED_NEXT_TO_THE_SUBJECT)
def test_what_is_asked_must_be_stated_in_a_passage(question, silent, stating):
    anchors = quantity_anchors(question, [], never_common)
    assert missing_quantity(question, [silent], anchors)
    assert not missing_quantity(question, [stating], anchors)


def test_a_question_about_what_a_meeting_said_is_about_the_library():
    from knowledge.scope import asks_about_a_speech

    for question in ("区里开会到底管不管电瓶车进楼道充电？", "发言稿里对社会单位提的三个自是啥？", "调度会上定的期限是哪天？"):
        assert asks_about_a_speech(question), question
    for question in ("单位晚会上跳什么舞好？", "在镇政府会议室开会，投影仪连不上怎么办？"):
        assert not asks_about_a_speech(question), question


def test_the_example_gate_does_not_apply_to_a_question_about_a_meeting(bundled_kb):
    """However near an everyday example it sits, a question about what a meeting said is weighed on its evidence."""
    import dataclasses

    from knowledge.answer import AnswerStyle, decline_reason

    def reason(question):
        near_chat = dataclasses.replace(bundled_kb.search(question), example_margin=-0.05, example_source="everyday_questions")
        return decline_reason(near_chat, AnswerStyle()) or ""

    assert "nearer" not in reason("楼里好多人把电瓶车推进楼道充电，区里开会到底管不管这个事？")
    assert "nearer" in reason("楼里好多人把电瓶车推进楼道充电，到底有没有人管？")


def test_the_how_often_words_leave_yici_xing_whole():
    """一次 is stripped from the anchors as the how-often ask, but 一次性 stays a word of the subject."""
    assert "一次性" in quantity_anchors("一次性伤残补助金能拿几个月工资？", [], never_common)


def test_a_time_limit_question_is_not_asking_how_often():
    assert quantity_anchors("厂里出了事故多久要报到县里？", [], never_common) is None


def test_who_decides_or_whose_duty_is_not_asking_for_a_name():
    assert quantity_anchors("小孩放鞭炮，安全教育是谁的责任？", [], never_common) is None
    assert quantity_anchors("事故调查组的组长是谁说了算？", [], never_common) is None


def test_every_year_answers_how_often_but_not_how_long():
    yearly = ["灭火器等消防器材每年至少检测一次。"]
    for question, refused in (("家里的灭火器能用几年？", True), ("家里的灭火器几年检测一次？", False)):
        anchors = quantity_anchors(question, [], never_common)
        assert missing_quantity(question, yearly, anchors) is refused, question


def test_a_few_people_is_not_a_question_about_a_number():
    for question in ("厂里来了几个职校的实习生，也得培训吗？", "我们店就几个人，也要建救援队吗？",
                     "出事后好几个部门都来了，谁说了算？", "消防设施分哪几类？",
                     "过年想给亲戚寄几箱烟花，走快递可以吗？", "老板让我们几个工人统一口径，会怎么罚？",
                     "那台锅炉是九几年的，超期服役怎么处理？", "槽罐车多拉几吨中不中？",
                     "请村里几个人帮着砌墙，条例管得着我不？", "老伴瘫在床上好几年了，发大水时政府会先转移我们吗？"):
        assert quantity_anchors(question, [], never_common) is None, question

# Question-type signals off: no hand-tuned boosts and no learned ranker (whose features include them).
OFF = RetrievalSettings(answer_type_boost=0.0, liability_penalty=0.0, learned_ranker=False)


def _top(kb, question, settings=None, k=5):
    return retrieve(kb.index, question, k=k, settings=settings).hits


def _rank(hits, title, article):
    return next((i for i, h in enumerate(hits) if (h.chunk.doc_title, h.chunk.article) == (title, article)), 99)


def test_frequency_question_reaches_the_article_that_states_a_frequency(bundled_kb):
    question = "锅炉、压力容器这些设备，使用单位自己检查的频率有规定吗"
    on = _rank(_top(bundled_kb, question, k=10), "特种设备安全监察条例", "第二十七条")  # 至少每月进行一次自行检查
    off = _rank(_top(bundled_kb, question, OFF, k=10), "特种设备安全监察条例", "第二十七条")
    assert on < 5 and on < off


def test_definition_question_reaches_the_defining_clause(bundled_kb):
    hits = _top(bundled_kb, "哪些设备属于特种设备")
    assert any("所称特种设备" in h.chunk.text for h in hits)


def test_duty_question_is_not_answered_from_the_liability_chapter(bundled_kb):
    question = "剧毒化学品在仓库里怎么存放保管"

    def liability(hits):
        return sum(1 for h in hits if any("法律责任" in p for p in h.chunk.heading_path))

    assert liability(_top(bundled_kb, question)) < liability(_top(bundled_kb, question, OFF))
    # a question about sanctions still gets the liability chapter
    assert liability(_top(bundled_kb, "剧毒化学品没有双人保管，会被怎么处罚")) > 0


def test_fee_question_with_only_fines_in_the_library_is_declined(bundled_kb):
    answer = bundled_kb.ask("办理危险化学品经营许可证要交多少钱手续费？")
    assert not answer.answered


def test_everyday_questions_are_nearer_other_topics_than_safety():
    """The off-topic gate with the real e5 model: everyday questions fall below the answer
    threshold, questions about safety duties stay above it."""
    from knowledge.answer import AnswerStyle
    from knowledge.embeddings import E5SmallEmbedder
    from knowledge.scope import TopicGate

    embedder = E5SmallEmbedder(threads=2)
    gate, threshold = TopicGate(embedder), AnswerStyle().min_topic_margin

    def margin(question):
        return gate.margin(embedder.embed_queries([question])[0])

    for question in ("周末想带孩子去郊外徒步，有什么好走的线路？", "新买的手机怎么把旧手机的照片传过来？"):
        assert margin(question) < threshold, question
    for question in ("饭店后厨的液化气罐放在哪里才安全？", "商场装修期间能不能动火施工？"):
        assert margin(question) >= threshold, question


@pytest.fixture(scope="module")
def e5_phrasings(tmp_path_factory):
    """The real e5 model and the vectors of the bundled library's phrasings (from the shipped cache)."""
    import chromadb

    from knowledge.base import BUNDLED_LIBRARY, BUNDLED_VECTORS
    from knowledge.embeddings import E5SmallEmbedder
    from knowledge.index import VectorCache
    from knowledge.loaders import load_document
    from knowledge.phrasing_vectors import PhrasingVectors
    from knowledge.phrasings import BUNDLED_PHRASINGS, load_phrasings
    from knowledge.splitter import split_document

    embedder = E5SmallEmbedder(threads=2)
    vectors = PhrasingVectors(chromadb.PersistentClient(path=str(tmp_path_factory.mktemp("e5"))), "test", embedder,
                              VectorCache(BUNDLED_VECTORS / f"{embedder.name}.npz"))
    documents = [p for p in sorted(BUNDLED_LIBRARY.glob("*/*.*")) if p.name != "SOURCES.md"]
    vectors.build([c for doc in documents for c in split_document(load_document(doc), 600)],
                  load_phrasings([BUNDLED_PHRASINGS]).for_chunk)
    return embedder, vectors


@pytest.fixture(scope="module")
def outside_margin(e5_phrasings):
    """Margin of a question between the library's phrasings and the bundled outside examples."""
    from knowledge.scope import ExampleGate, load_outside_examples

    embedder, vectors = e5_phrasings
    gate = ExampleGate(vectors, load_outside_examples())
    return lambda question: gate.margin(embedder.embed_queries([question])[0])


# (the file whose examples should be nearest, questions declined, questions answered)
OUTSIDE_CASES = [
    pytest.param("everyday_questions",
                 ("单位安全生产月搞活动，主持人穿什么衣服合适？", "单位年会抽奖，奖品买什么实用？", "消防站旁边新开的火锅店好吃吗？"),
                 ("厂里叉车司机没证能开吗", "楼道里给电动车充电归谁管", "镇上开会说要搞隐患排查，我们村要做些啥"),
                 id="chat with a safety word"),
    pytest.param("practical_tips", ("手被开水烫了能不能抹牙膏？", "晚上家里着火了门把手很烫还能开门跑吗？"),
                 ("工地上发现脚手架松动，工人可以先停工撤出来吗？", "楼道里给电动车充电归谁管"), id="how-tos"),
    pytest.param("beyond_library_questions", ("去年全省一共发生了多少起火灾？", "单位买的消防水带哪个牌子耐用？"),
                 ("发现饭店后厨液化气罐漏气，应该向哪个部门反映？", "电梯年检过期了还在用，归哪个部门管？"),
                 id="statistics and shopping"),
    pytest.param("other_law_questions", ("试用期被公司辞退了，公司要给补偿吗？", "邻居家的树枝伸到我家院子里，我能直接砍掉吗？"),
                 ("工人在车间干活被机器轧伤了，算不算工伤？", "厂里不给工人发劳保用品，合法吗？"), id="other laws"),
]


@pytest.mark.parametrize("source, declined, answered", OUTSIDE_CASES)
def test_questions_the_library_does_not_answer_are_nearer_the_outside_examples(outside_margin, source, declined,
                                                                               answered):
    """Below the threshold, nearest an example of the expected file; questions about duties stay above."""
    from knowledge.answer import AnswerStyle

    threshold = AnswerStyle().min_example_margin
    for question in declined:
        margin, nearest = outside_margin(question)
        assert margin < threshold and nearest == source, question
    for question in answered:
        assert outside_margin(question)[0] >= threshold, question


@pytest.mark.parametrize("path", ["EVERYDAY_QUESTIONS", "PRACTICAL_TIPS", "BEYOND_LIBRARY", "OTHER_LAWS"])
def test_outside_examples_ship_with_the_package(path):
    from knowledge import scope

    examples = scope.load_example_questions(getattr(scope, path))
    assert len(examples) >= 100 and len(set(examples)) == len(examples)
