"""The domain vocabulary files are checked against the corpus they claim to describe."""
from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

import knowledge
from knowledge import vocabulary

LIBRARY = Path(knowledge.__file__).resolve().parent / "library"
ARTICLE_LINE = re.compile(r"^\s*(第[零〇一二三四五六七八九十百千]+条)")
WS = re.compile(r"\s+")

REQUIRED_TERMS = {
    "三管三必须", "四不放过", "九小场所", "五落实", "四不两直", "三自主两公开一承诺", "一岗双责", "党政同责",
    "齐抓共管", "双重预防机制", "三同时", "三合一场所", "挂牌督办", "隐患动态清零", "安全生产责任制",
    "全员安全生产责任制", "重大事故隐患", "安全生产标准化", "应急预案",
}


def squash(text: str) -> str:
    return WS.sub("", text)


@cache
def corpus() -> dict[str, str]:
    """Document title → text. Laws are titled by their "# " heading, speeches by file stem."""
    docs: dict[str, str] = {}
    for path in sorted((LIBRARY / "laws").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        heading = text.splitlines()[0]
        if path.name == "SOURCES.md" or not heading.startswith("# "):
            continue
        docs[heading[2:].strip()] = text
    for path in sorted((LIBRARY / "speeches").glob("*.txt")):
        docs[path.stem] = path.read_text(encoding="utf-8")
    return docs


@cache
def law_titles() -> frozenset[str]:
    return frozenset(t for t, text in corpus().items() if text.startswith("# "))


@cache
def articles(title: str) -> dict[str, str]:
    """第X条 → its text, from its own line up to the next line starting with 第Y条."""
    out: dict[str, list[str]] = {}
    current = None
    for line in corpus()[title].splitlines():
        m = ARTICLE_LINE.match(line)
        if m:
            current = m.group(1)
            out[current] = []
        if current:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


@cache
def squashed_corpus() -> str:
    return squash("\n".join(corpus().values()))


def all_sources():
    return [(e.term, s) for e in vocabulary.load_glossary() for s in e.sources]


# ------------------------------------------------------------------ corpus sanity


def test_corpus_has_fourteen_laws_and_nine_speeches():
    assert len(law_titles()) == 14
    assert len(corpus()) - len(law_titles()) == 9


# ------------------------------------------------------------------ glossary


def test_glossary_has_required_terms():
    terms = {e.term for e in vocabulary.load_glossary()}
    assert REQUIRED_TERMS <= terms, REQUIRED_TERMS - terms


def test_glossary_terms_are_unique():
    counts = Counter(e.term for e in vocabulary.load_glossary())
    assert [t for t, n in counts.items() if n > 1] == []


def test_glossary_names_do_not_point_to_two_entries():
    counts = Counter(name for e in vocabulary.load_glossary() for name in set(e.names))
    assert [n for n, c in counts.items() if c > 1] == []


def test_every_glossary_entry_has_a_source_and_a_definition():
    for e in vocabulary.load_glossary():
        assert e.sources, e.term
        assert 8 <= len(e.definition) <= 200, e.term


def test_glossary_sources_name_existing_documents():
    missing = [(term, s.doc) for term, s in all_sources() if s.doc not in corpus()]
    assert missing == []


def test_glossary_articles_only_cited_for_laws_and_exist():
    bad = []
    for term, s in all_sources():
        if s.article is None:
            continue
        if s.doc not in law_titles() or s.article not in articles(s.doc):
            bad.append((term, s.doc, s.article))
    assert bad == []


def test_glossary_quotes_are_8_to_40_characters():
    bad = [(term, s.quote) for term, s in all_sources() if not 8 <= len(squash(s.quote)) <= 40]
    assert bad == []


def test_glossary_quotes_occur_verbatim_in_named_document():
    bad = [(term, s.doc, s.quote) for term, s in all_sources()
           if squash(s.quote) not in squash(corpus().get(s.doc, ""))]
    assert bad == []


def test_glossary_quotes_occur_in_named_article():
    bad = []
    for term, s in all_sources():
        if s.article is not None and squash(s.quote) not in squash(articles(s.doc).get(s.article, "")):
            bad.append((term, s.doc, s.article, s.quote))
    assert bad == []


# ------------------------------------------------------------------ law aliases


def test_alias_titles_are_existing_laws():
    assert set(vocabulary.load_law_aliases()) == set(law_titles())


def test_no_alias_maps_to_two_titles():
    counts = Counter(a for aliases in vocabulary.load_law_aliases().values() for a in set(aliases))
    assert [a for a, n in counts.items() if n > 1] == []


def test_no_alias_is_another_laws_title():
    aliases = vocabulary.load_law_aliases()
    clashes = [(t, a) for t, names in aliases.items() for a in names if a in aliases and a != t]
    assert clashes == []


def test_every_alias_resolves_to_its_own_title():
    wrong = [(t, a, vocabulary.resolve_law_alias(a)) for t, names in vocabulary.load_law_aliases().items()
             for a in (t, *names) if vocabulary.resolve_law_alias(a) != t]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("新安法第二十一条", "中华人民共和国安全生产法"),
        ("消防法第十六条", "中华人民共和国消防法"),
        ("特种设备安全监察条例第二条", "特种设备安全监察条例"),
        ("特种设备安全法第二条", "中华人民共和国特种设备安全法"),
        ("道路交通安全法第五十一条", "中华人民共和国道路交通安全法"),
        ("《生产安全事故报告和调查处理条例》第九条", "生产安全事故报告和调查处理条例"),
        ("493号令规定几小时内报告？", "生产安全事故报告和调查处理条例"),
        ("国务院令第493号", "生产安全事故报告和调查处理条例"),
        ("危化品条例 第三条", "危险化学品安全管理条例"),
    ],
)
def test_resolve_law_alias(text, title):
    assert vocabulary.resolve_law_alias(text) == title


@pytest.mark.parametrize("text", ["", "老板不给买工伤保险怎么办", "网络安全法第二十一条", "食品安全法"])
def test_resolve_law_alias_none_without_a_library_law(text):
    assert vocabulary.resolve_law_alias(text) is None


# ------------------------------------------------------------------ synonyms


def test_synonym_rule_count_in_range():
    assert 150 <= len(vocabulary.load_synonyms()) <= 700


def test_synonym_expand_terms_occur_in_corpus():
    expand = {t for r in vocabulary.load_synonyms() for t in r.expand}
    missing = sorted(t for t in expand if squash(t) not in squashed_corpus())
    assert missing == []


def test_synonym_words_are_unique_across_rules():
    counts = Counter(w for r in vocabulary.load_synonyms() for w in set(r.words))
    assert [w for w, n in counts.items() if n > 1] == []


# ------------------------------------------------------------------ domain terms


def test_domain_terms_cover_every_source():
    terms = vocabulary.domain_terms()
    assert {"三管三必须", "三个必须", "中华人民共和国安全生产法", "新安法", "生产经营单位", "从业人员"} <= terms
    assert all(t in terms for r in vocabulary.load_synonyms() for t in r.expand)


def test_loaders_return_fresh_containers():
    vocabulary.load_law_aliases()["中华人民共和国消防法"].append("X")
    vocabulary.load_glossary().clear()
    assert "X" not in vocabulary.load_law_aliases()["中华人民共和国消防法"]
    assert vocabulary.load_glossary()
