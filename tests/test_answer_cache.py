"""knowledge.base.AnswerCache: repeated questions are answered from memory until the index changes."""
from bot.app import build_knowledge
from knowledge.base import AnswerCache
from tests.conftest import lexical_config

LAW = """中华人民共和国测试安全法
（2021年6月10日修正）
第一条 为了测试答案缓存，制定本法。
第二条 生产经营单位应当每季度组织一次应急演练。
"""


def _kb(tmp_path, text=LAW):
    source = tmp_path / "docs" / "测试安全法.txt"
    source.parent.mkdir(exist_ok=True)
    source.write_text(text, encoding="utf-8")
    kb = build_knowledge(lexical_config(), tmp_path / "data")
    kb.ingest_paths([source])
    return kb, source


def test_repeated_question_is_served_from_the_cache(tmp_path):
    kb, _ = _kb(tmp_path)
    first = kb.ask("生产经营单位多久组织一次应急演练？")
    again = kb.ask("生产经营单位多久组织一次应急演练")  # punctuation does not matter
    assert again is first
    assert kb.answers.hits == 1


def test_ingest_drops_cached_answers(tmp_path):
    kb, source = _kb(tmp_path)
    before = kb.ask("生产经营单位多久组织一次应急演练")
    source.write_text(LAW.replace("2021年6月10日", "2024年1月1日").replace("每季度", "每月"), encoding="utf-8")
    kb.ingest_paths([source])
    after = kb.ask("生产经营单位多久组织一次应急演练")
    assert "每月" in after.text and after is not before


def test_cache_keeps_only_the_most_recent_questions():
    cache = AnswerCache(size=2)
    for q in ("甲", "乙", "丙"):
        cache.put(q, q)  # any object will do for the eviction rule
    assert cache.get("甲") is None and cache.get("丙") == "丙"


def test_concurrent_askers_of_one_question_share_one_computation():
    """Four askers arrive while the first computes; the answer is not cacheable, so only sharing
    the computation in flight (not the cache) can keep them from computing it again."""
    import threading
    import time

    cache = AnswerCache()
    calls, release = [], threading.Event()

    def compute():
        calls.append(1)
        release.wait(5)
        return "答案", False

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("九小场所是哪些", compute)))
               for _ in range(5)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while cache.waiting < 4 and time.monotonic() < deadline:  # all four others joined the first
        time.sleep(0.005)
    assert cache.waiting == 4
    release.set()
    for t in threads:
        t.join()
    assert results == ["答案"] * 5 and len(calls) == 1


def test_an_answer_not_cacheable_is_computed_again():
    cache = AnswerCache()
    calls = []

    def compute():
        calls.append(1)
        return "备用答案", False

    cache.get_or_compute("问题", compute)
    cache.get_or_compute("问题", compute)
    assert len(calls) == 2
