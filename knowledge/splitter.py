"""Split documents by their structure, not by character count.

Laws and regulations: one chunk per article (第X条) under its 编/章/节 path; an article longer than
`max_chars` is split at paragraph/item boundaries with the article's lead-in repeated.
Speeches, plans and notices: one chunk per paragraph, carrying the outline heading path
(一、 / （一） / 一是 / 第一，); short lines such as stand-alone headings are glued to the paragraph
that follows them; very long paragraphs are cut at sentence ends with one sentence of overlap.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.numerals import cn_to_int
from knowledge.types import Chunk, DocKind, SourceDocument

CN_NUM = "零〇一二三四五六七八九十百千两"
ARTICLE_RE = re.compile(rf"^(第[{CN_NUM}]+条)[ \u3000]+")
# 编/章/节 headings, with or without markdown hashes
STRUCT_RE = re.compile(rf"^#*\s*(第[{CN_NUM}]+[编章节])[ \u3000]*(.*)$")
INFO_END = "<!-- INFO END -->"

OUTLINE_LEVELS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (1, re.compile(rf"^[{CN_NUM}]+、")),
    (2, re.compile(rf"^[（(][{CN_NUM}]+[）)]")),
    (3, re.compile(rf"^[{CN_NUM}]+是")),
    (3, re.compile(rf"^第[{CN_NUM}]+[，,、：:]")),
    (3, re.compile(r"^\d{1,2}[.．、](?!\d)")),
)
SENTENCE_END_RE = re.compile(r"(?<=[。！？；!?;])")
HEADING_TITLE_RE = re.compile(r"^(.{2,40}?)[。！？；：:!?;]")
SHORT_LINE = 40  # lines this short with no sentence end are headings/titles, not paragraphs


@dataclass
class _Line:
    text: str
    start: int  # offset in the document text

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _lines(text: str, offset: int = 0) -> list[_Line]:
    out, pos = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            out.append(_Line(stripped, offset + pos + raw.index(stripped)))
        pos += len(raw) + 1
    return out


def split_document(doc: SourceDocument, max_chars: int = 600) -> list[Chunk]:
    if doc.kind == DocKind.LAW:
        chunks = _split_law(doc, max_chars)
    else:
        chunks = _split_outline(doc, max_chars)
    return [_with_ordinal(c, i) for i, c in enumerate(chunks)]


def _with_ordinal(chunk: Chunk, ordinal: int) -> Chunk:
    return Chunk(**{**chunk.__dict__, "ordinal": ordinal})


# ---------------------------------------------------------------- laws


def _split_law(doc: SourceDocument, max_chars: int) -> list[Chunk]:
    body_start = doc.text.find(INFO_END)
    body_start = body_start + len(INFO_END) if body_start >= 0 else 0
    path: dict[str, str] = {}
    chunks: list[Chunk] = []
    current: list[_Line] = []

    def flush() -> None:
        if current:
            chunks.extend(_article_chunks(doc, current, _law_path(path), max_chars))
            current.clear()

    for line in _lines(doc.text[body_start:], body_start):
        struct = STRUCT_RE.match(line.text)
        if struct:
            flush()
            level = struct.group(1)[-1]
            label = (struct.group(1) + " " + struct.group(2)).strip()
            path[level] = label
            # a new 编 resets 章 and 节; a new 章 resets 节
            for lower in {"编": "章节", "章": "节", "节": ""}[level]:
                path.pop(lower, None)
            continue
        if line.text.startswith("#"):
            continue  # other markdown headings (e.g. the title) are not article text
        if ARTICLE_RE.match(line.text):
            flush()
            current.append(line)
        elif current:
            current.append(line)
    flush()
    return chunks


def _law_path(path: dict[str, str]) -> tuple[str, ...]:
    return tuple(path[k] for k in "编章节" if k in path)


def _article_chunks(
    doc: SourceDocument, lines: list[_Line], heading_path: tuple[str, ...], max_chars: int
) -> list[Chunk]:
    article = ARTICLE_RE.match(lines[0].text).group(1)  # type: ignore[union-attr]
    number = cn_to_int(article[1:-1])
    full = "\n".join(line.text for line in lines)
    common = dict(doc_title=doc.title, heading_path=heading_path, article=article, article_no=number)
    if len(full) <= max_chars:
        return [Chunk(text=full, start=lines[0].start, end=lines[-1].end, **common)]
    # Long article: pack paragraphs/items into pieces; every piece after the first repeats the
    # article number and lead-in so it still reads (and retrieves) as part of that article.
    lead = lines[0].text
    header = lead if len(lead) <= 80 else lead[:80] + "……"
    pieces: list[list[_Line]] = [[]]
    size = 0
    for line in lines:
        if pieces[-1] and size + len(line.text) > max_chars:
            pieces.append([])
            size = len(header)
        pieces[-1].append(line)
        size += len(line.text) + 1
    out = []
    for part, piece in enumerate(pieces, start=1):
        body = "\n".join(line.text for line in piece)
        text = body if part == 1 else f"{header}\n{body}"
        out.append(Chunk(text=text, start=piece[0].start, end=piece[-1].end, part=part, **common))
    return out


# ---------------------------------------------------------------- outlines (speeches, plans)


def outline_level(text: str) -> int | None:
    for level, pattern in OUTLINE_LEVELS:
        if pattern.match(text):
            return level
    return None


def _heading_title(text: str) -> str:
    """The heading part of a line: up to its first sentence end, else all of a short line."""
    m = HEADING_TITLE_RE.match(text)
    if m:
        return m.group(1)
    return text if len(text) <= SHORT_LINE else text[:SHORT_LINE] + "……"


def _is_short(text: str) -> bool:
    return len(text) <= SHORT_LINE and not re.search(r"[。！？!?]", text[:-1])


def _split_outline(doc: SourceDocument, max_chars: int) -> list[Chunk]:
    path: dict[int, str] = {}
    chunks: list[Chunk] = []
    pending: list[_Line] = []  # short lines waiting for the paragraph they introduce

    for line in _lines(doc.text):
        level = outline_level(line.text)
        if level is not None:
            path[level] = _heading_title(line.text)
            for deeper in [k for k in path if k > level]:
                del path[deeper]
        if _is_short(line.text) and not _is_title_line(line.text, doc.title):
            pending.append(line)
            continue
        if _is_title_line(line.text, doc.title):
            continue
        heading = tuple(path[k] for k in sorted(path))
        group = pending + [line]
        pending = []
        chunks.extend(_paragraph_chunks(doc, group, heading, max_chars))
    if pending:  # trailing short lines (a closing slogan, a signature) still get indexed
        heading = tuple(path[k] for k in sorted(path))
        chunks.extend(_paragraph_chunks(doc, pending, heading, max_chars))
    return chunks


def _is_title_line(text: str, title: str) -> bool:
    bare = re.sub(r"^第[一二三四五六七八九十]+篇[:：]", "", text).strip()
    return bare == title


def _paragraph_chunks(
    doc: SourceDocument, group: list[_Line], heading: tuple[str, ...], max_chars: int
) -> list[Chunk]:
    text = "\n".join(line.text for line in group)
    start, end = group[0].start, group[-1].end
    if len(text) <= max_chars:
        return [Chunk(doc_title=doc.title, text=text, start=start, end=end, heading_path=heading)]
    sentences = [s for s in SENTENCE_END_RE.split(text) if s]
    pieces: list[list[str]] = [[]]
    for sentence in sentences:
        if pieces[-1] and sum(map(len, pieces[-1])) + len(sentence) > max_chars:
            pieces.append([pieces[-1][-1]])  # one sentence of overlap keeps phrases whole
        pieces[-1].append(sentence)
    out, cursor = [], start
    for part, piece in enumerate(pieces, start=1):
        body = "".join(piece)
        local = doc.text.find(piece[0].lstrip("\n"), cursor)
        piece_start = local if local >= 0 else cursor
        cursor = piece_start
        out.append(
            Chunk(
                doc_title=doc.title,
                text=body.strip("\n"),
                start=piece_start,
                end=min(end, piece_start + len(body)),
                heading_path=heading,
                part=part,
            )
        )
    return out
