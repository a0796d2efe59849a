"""Domain vocabulary: policy-term glossary, law aliases and the chat-word → legal-word bridge.

Three YAML files ship next to this module (package data):

* ``glossary.yaml``  — 三管三必须, 四不放过 … with a short definition and verbatim corpus quotes;
* ``aliases.yaml``   — full law title → short and colloquial names (安法, 493号令 …);
* ``synonyms.yaml``  — colloquial words → the wording the laws use (老板 → 主要负责人 …).

Everything is loaded once per process (functools.cache); the public loaders hand out fresh
lists/dicts so callers cannot corrupt the cache.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

GLOSSARY_FILE = "glossary.yaml"
ALIASES_FILE = "aliases.yaml"
SYNONYMS_FILE = "synonyms.yaml"

# Laws that are NOT in the library but whose names contain one of our aliases (网络安全法 ⊃ 安全法,
# 突发公共卫生事件应急条例 ⊃ 应急条例 …). They are blanked out before alias matching.
OTHER_LAW_NAMES: tuple[str, ...] = (
    "国家安全法", "网络安全法", "数据安全法", "食品安全法", "核安全法", "生物安全法",
    "海上交通安全法", "矿山安全法", "突发公共卫生事件应急条例", "公共卫生事件应急条例",
    "公安法", "治安法", "平安法",
)
_DECREE_RE = re.compile(r"令第(\d+)号")  # 国务院令第493号 → 493号令
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class GlossarySource:
    doc: str  # document title: a law's "# " heading or a speech's file stem
    article: str | None  # 第三条, or None for speeches
    quote: str  # verbatim substring of that article / speech


@dataclass(frozen=True)
class GlossaryEntry:
    term: str
    aliases: tuple[str, ...]
    definition: str
    sources: tuple[GlossarySource, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.term, *self.aliases)


@dataclass(frozen=True)
class SynonymRule:
    words: tuple[str, ...]  # colloquial chat words
    expand: tuple[str, ...]  # legal wording to add to the query


def _read_yaml(name: str):
    text = resources.files(__package__ or "knowledge").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _strings(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


@cache
def _glossary() -> tuple[GlossaryEntry, ...]:
    entries = []
    for i, raw in enumerate(_read_yaml(GLOSSARY_FILE) or []):
        where = f"{GLOSSARY_FILE}[{i}]"
        sources = []
        for j, src in enumerate(raw.get("sources") or []):
            article = src.get("article")
            sources.append(GlossarySource(
                doc=_text(src.get("doc"), f"{where}.sources[{j}].doc"),
                article=None if article is None else _text(article, f"{where}.sources[{j}].article"),
                quote=_text(src.get("quote"), f"{where}.sources[{j}].quote"),
            ))
        entries.append(GlossaryEntry(
            term=_text(raw.get("term"), f"{where}.term"),
            aliases=_strings(raw.get("aliases"), f"{where}.aliases"),
            definition=_text(raw.get("definition"), f"{where}.definition"),
            sources=tuple(sources),
        ))
    return tuple(entries)


@cache
def _law_aliases() -> dict[str, tuple[str, ...]]:
    raw = _read_yaml(ALIASES_FILE) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{ALIASES_FILE}: expected a mapping of full title → aliases")
    out: dict[str, tuple[str, ...]] = {}
    for title, names in raw.items():
        out[_text(title, ALIASES_FILE)] = _strings(names, f"{ALIASES_FILE}[{title}]")
    return out


@cache
def _synonyms() -> tuple[SynonymRule, ...]:
    rules = []
    for i, raw in enumerate(_read_yaml(SYNONYMS_FILE) or []):
        where = f"{SYNONYMS_FILE}[{i}]"
        words = _strings(raw.get("words"), f"{where}.words")
        expand = _strings(raw.get("expand"), f"{where}.expand")
        if not words or not expand:
            raise ValueError(f"{where}: both words and expand must be non-empty")
        rules.append(SynonymRule(words, expand))
    return tuple(rules)


def load_glossary() -> list[GlossaryEntry]:
    """Policy terms with definitions and corpus quotes, in file order."""
    return list(_glossary())


def load_law_aliases() -> dict[str, list[str]]:
    """Full law title → its short and colloquial names (the title itself not included)."""
    return {title: list(names) for title, names in _law_aliases().items()}


def load_synonyms() -> list[SynonymRule]:
    """Chat-word → legal-word rules for query expansion, in file order."""
    return list(_synonyms())


@cache
def _domain_terms() -> frozenset[str]:
    terms: set[str] = set()
    for entry in _glossary():
        terms.update(entry.names)
    for title, names in _law_aliases().items():
        terms.add(title)
        terms.update(names)
    for rule in _synonyms():
        terms.update(rule.expand)
    return frozenset(t for t in terms if t)


def domain_terms() -> set[str]:
    """Glossary terms and aliases, law titles and aliases, synonym targets: a segmenter user dictionary."""
    return set(_domain_terms())


@cache
def _alias_index() -> tuple[tuple[str, str], ...]:
    """(name, full title) pairs, longest name first, so the first hit is the longest mention."""
    pairs: dict[str, str] = {}
    for title, names in _law_aliases().items():
        for name in (title, *names):
            pairs.setdefault(_normalise(name), title)
    return tuple(sorted(pairs.items(), key=lambda kv: -len(kv[0])))


def _normalise(text: str) -> str:
    text = _SPACE_RE.sub("", unicodedata.normalize("NFKC", text))
    return _DECREE_RE.sub(r"\1号令", text)


def resolve_law_alias(text: str) -> str | None:
    """The full title of the law named in ``text`` (longest title or alias wins), or None.

    "新安法第二十一条" → 中华人民共和国安全生产法; "特种设备安全监察条例第二条" → 特种设备安全监察条例;
    names of laws outside the library (网络安全法, 食品安全法 …) never resolve to a library law.
    """
    if not text:
        return None
    text = _normalise(text)
    for other in OTHER_LAW_NAMES:
        text = text.replace(other, "\x00" * len(other))
    for name, title in _alias_index():
        if name in text:
            return title
    return None
