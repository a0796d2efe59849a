"""Data types shared by the knowledge pipeline (load -> split -> index -> retrieve -> answer).

Nothing here knows about chats or channels.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum


def citation_label(title: str, article: str | None, heading_path: tuple[str, ...] = ()) -> str:
    """《title》第X条 for laws; 《title》 + the outline path (each heading cut short) for speeches."""
    base = f"《{title}》"
    if article:
        return base + article
    if heading_path:
        return base + " " + " › ".join(h if len(h) <= 18 else h[:17] + "…" for h in heading_path)
    return base


class DocKind(str, Enum):
    """How a document is structured, which decides how it is split."""

    LAW = "law"  # laws and regulations: 第X条 articles under 编/章/节
    OUTLINE = "outline"  # speeches, plans, notices: 一、 （一） 一是 第一，


@dataclass(frozen=True)
class SourceDocument:
    """A document after loading: plain text plus what we know about it."""

    title: str  # 《》-less title, e.g. 中华人民共和国安全生产法
    text: str  # full plain text, normalised to \n line endings
    kind: DocKind
    path: str  # where it was loaded from (for listings and re-ingest)
    revision_date: str | None = None  # ISO date of the latest revision named in the text
    content_hash: str = ""  # sha256 of the raw file bytes

    @property
    def doc_id(self) -> str:
        """Stable id of the document *identity* (its title): a new revision replaces the old one."""
        return hashlib.sha256(self.title.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage with its place in its document."""

    doc_title: str
    text: str  # the passage as shown to users (header repeated for split articles)
    start: int  # character span of the passage body in SourceDocument.text
    end: int
    heading_path: tuple[str, ...] = ()  # 编/章/节 for laws, outline headings for speeches
    article: str | None = None  # e.g. 第二十一条 (laws only)
    article_no: int | None = None  # 21
    part: int = 0  # 0 for whole articles/paragraphs; 1.. for pieces of a long one
    ordinal: int = 0  # position of the chunk within its document
    meta: dict = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        """Content address: identical text in the same place never needs re-embedding."""
        key = f"{self.doc_title}\x1f{self.article or ''}\x1f{self.part}\x1f{self.text}"
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]

    def citation(self) -> str:
        """Human citation: 《title》第X条, or 《title》 heading › path."""
        return citation_label(self.doc_title, self.article, self.heading_path)


@dataclass(frozen=True)
class Hit:
    """A chunk returned by retrieval with its fused score (higher is better)."""

    chunk: Chunk
    score: float
    lexical_rank: int | None = None  # 1-based rank in BM25, None if absent
    dense_rank: int | None = None  # 1-based rank in the vector search, None if absent
    exact: bool = False  # found by exact law+article look-up


@dataclass(frozen=True)
class Citation:
    source: str  # document title (no 《》)
    article: str | None  # 第X条 or None
    text: str  # the quoted passage or sentence
    heading_path: tuple[str, ...] = ()

    def label(self) -> str:
        return citation_label(self.source, self.article, self.heading_path)


@dataclass(frozen=True)
class Answer:
    """What the bot says to a question. `answered=False` means the knowledge base does not cover it."""

    answered: bool
    text: str
    citations: tuple[Citation, ...] = ()
    mode: str = "extractive"  # extractive | llm | refusal | lookup
