"""Load source files (.md .txt .html .docx .pdf .doc .wps) into SourceDocument.

Text is kept verbatim (only line endings and control characters are normalised), because
answers quote passages and evaluation checks for exact substrings of the source wording.
Every failure surfaces as LoadError with a short Chinese message for the user.
"""
from __future__ import annotations

import codecs
import contextlib
import datetime as _dt
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

from knowledge.types import DocKind, SourceDocument

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".md", ".txt", ".docx", ".pdf", ".html", ".htm", ".doc", ".wps"}
)
_SUPPORTED_HINT = "支持 .md .txt .docx .pdf .html，.doc/.wps 需安装 LibreOffice"
_NO_OFFICE = (
    "读取 .doc/.wps 需要 LibreOffice（soffice），本机未安装。"
    "可执行 apt-get install libreoffice-writer-nogui 后重试，或先另存为 .docx。"
)
CONVERT_TIMEOUT_S = 120

_ARTICLE_RE = re.compile(r"^[ \t\u3000]*第[零〇○一二三四五六七八九十百千]+条(?:\s|$)", re.M)
_INFO_END_RE = re.compile(r"^[ \t]*<!--\s*INFO END\s*-->[ \t]*$", re.M)
_DATE_RE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_H1_RE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.M)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_SENTENCE_PUNCT = set("。；;！!？?，,：:")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy binary Office (.doc/.wps)


class LoadError(Exception):
    """A file could not be loaded; str(e) is a concise Chinese message for the user."""


def _bad_count(text: str) -> int:
    """Characters that do not occur in real text (controls, private use, unassigned, U+FFFD)."""
    return sum(n for ch, n in Counter(text).items() if ch not in "\t\n\r\f"
               and (ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs")))


def _plausible(text: str) -> bool:
    # Random bytes decode to roughly 7-25 % such characters; real text to almost none.
    # A few stray control characters in a short file are tolerated (they get removed).
    return _bad_count(text) <= max(8, 0.05 * len(text))


def read_text_bytes(data: bytes, name: str = "") -> str:
    """Decode a text file: BOM, UTF-8, GB18030/GBK, then charset-normalizer. Binary raises LoadError."""
    label = f"：{name}" if name else ""
    binary = LoadError(f"文件不是文本文件（可能是二进制文件或已损坏）{label}")
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad "Unicode"
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data:
        raise binary
    # A UTF-8 file with a few damaged bytes (e.g. cut mid-character) must stay UTF-8: read as
    # GB18030 it would become mojibake. GBK text read as UTF-8 breaks at nearly every character.
    text = data.decode("utf-8", errors="replace")
    broken = text.count("\ufffd") - data.count("\ufffd".encode("utf-8"))
    if broken == 0 or broken * 50 <= sum(1 for ch in text if ord(ch) > 127) - broken:
        if not _plausible(text):
            raise binary
        return text
    for codec in ("gb18030", "gbk"):  # GB18030 is a superset of GBK/GB2312; cp936 maps 0x80 to €
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if _plausible(text):
            return text
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
    except Exception:  # noqa: BLE001 - a detector failure only means "unknown"
        best = None
    if best is None:
        raise LoadError(f"文件编码无法识别{label}（请另存为 UTF-8 后重试）")
    text = str(best)
    if not _plausible(text):
        raise binary
    return text


def _clean(text: str) -> str:
    """\\n line endings, control characters removed; nothing else is rewritten."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    return _CONTROL_RE.sub("", text)


def _clean_title(title: str) -> str:
    title = title.strip()
    if title.startswith("《") and title.endswith("》"):
        title = title[1:-1].strip()
    return title.replace("《", "〈").replace("》", "〉")  # nested title marks, if any


def _detect_kind(text: str) -> DocKind:
    return DocKind.LAW if len(_ARTICLE_RE.findall(text)) >= 3 else DocKind.OUTLINE


def _revision_date(text: str) -> str | None:
    """Latest YYYY年M月D日 in the header (before <!-- INFO END -->, else before the first article)."""
    marker = _INFO_END_RE.search(text) or _ARTICLE_RE.search(text)
    header = text[: marker.start()] if marker else text
    dates = []
    for m in _DATE_RE.finditer(header):
        try:
            dates.append(_dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            continue
    return max(dates).isoformat() if dates else None


def _looks_like_title(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= 60 and not (_SENTENCE_PUNCT & set(line))


def _load_text(data: bytes, path: Path) -> tuple[str, str | None]:
    text = _clean(read_text_bytes(data, path.name))
    if path.suffix.lower() == ".md":  # first "# " heading anywhere (front matter may precede it)
        m = _H1_RE.search(text)
    else:  # .txt: only when the file starts with one
        m = _H1_RE.match(next((ln for ln in text.split("\n") if ln.strip()), "").strip())
    return text, m.group(1) if m else None


def _decode_html(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    m = re.search(rb"charset\s*=\s*[\"']?\s*([A-Za-z0-9_\-]+)", data[:4096], re.I)
    if m:
        codec = m.group(1).decode("ascii").lower()
        codec = "gb18030" if codec in ("gb2312", "gbk", "x-gbk", "cp936") else codec
        try:
            return data.decode(codec)
        except (LookupError, UnicodeDecodeError):
            pass
    return read_text_bytes(data, name)


_BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary "
    "table tbody tfoot thead tr ul".split()
)
_DROP_TAGS = ["script", "style", "noscript", "template", "head", "title"]


def _load_html(data: bytes, path: Path) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    soup = BeautifulSoup(_decode_html(data, path.name), "html.parser")
    title = None
    for tag_name in ("title", "h1"):
        tag = soup.find(tag_name)
        if tag is not None and tag.get_text(strip=True):
            title = tag.get_text(" ", strip=True)
            break
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    parts: list[str] = []

    def walk(node: Tag, pre: bool) -> None:
        for child in node.children:
            if isinstance(child, PreformattedString):  # comments, doctype, CDATA, ...
                continue
            if isinstance(child, NavigableString):
                s = str(child)
                parts.append(s if pre else re.sub(r"[ \t\r\n\f]+", " ", s))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name == "br":
                    parts.append("\n")
                    continue
                block = name in _BLOCK_TAGS
                if block:
                    parts.append("\n")
                walk(child, pre or name == "pre")
                if name in ("td", "th"):
                    parts.append("\t")
                if block:
                    parts.append("\n")

    walk(soup, False)
    lines = (ln.strip(" \t") for ln in "".join(parts).split("\n"))
    return _clean("\n".join(ln for ln in lines if ln)), title


def _load_docx(data: bytes, path: Path) -> tuple[str, str | None]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():  # paragraphs and tables in document order
            if isinstance(block, Table):
                for row in block.rows:
                    cells, seen = [], set()
                    for cell in row.cells:  # merged cells repeat: keep each once
                        if id(cell._tc) not in seen:
                            seen.add(id(cell._tc))
                            cells.append(cell.text)
                    lines.append("\t".join(cells))
            else:
                lines.append(block.text)
        core_title = (document.core_properties.title or "").strip()
    except Exception as exc:  # noqa: BLE001 - python-docx raises many unrelated types
        raise LoadError(f"无法读取 Word 文档（文件可能已损坏或不是 .docx 格式）：{path.name}") from exc
    text = _clean("\n".join(lines))
    # Word, WPS and converters stamp placeholder titles; only a Chinese title is a real one.
    if core_title and re.search(r"[\u4e00-\u9fff]", core_title):
        return text, core_title
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    return text, first.strip() if _looks_like_title(first) else None


def _load_pdf(data: bytes, path: Path) -> tuple[str, str | None]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(f"PDF 已加密，无法读取：{path.name}")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many unrelated types
        raise LoadError(f"无法读取 PDF（文件可能已损坏）：{path.name}") from exc
    text = _clean("\n".join(pages))
    if not text.strip():
        raise LoadError(f"PDF 中没有可提取的文字（可能是扫描件，需要先做文字识别）：{path.name}")
    return text, None


def _convert_with_office(data: bytes, path: Path) -> bytes:
    """Convert .doc/.wps bytes to .docx bytes with headless LibreOffice."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        raise LoadError(_NO_OFFICE)
    with tempfile.TemporaryDirectory(prefix="safeduty-office-") as tmp:
        tmp_dir = Path(tmp)
        home = tmp_dir / "home"
        home.mkdir()
        src = tmp_dir / ("input" + path.suffix.lower())  # ASCII name: avoids locale trouble
        src.write_bytes(data)
        out_dir = tmp_dir / "out"
        cmd = [exe, f"-env:UserInstallation={(tmp_dir / 'profile').as_uri()}", "--headless",
               "--norestore", "--convert-to", "docx", "--outdir", str(out_dir), str(src)]
        env = {**os.environ, "HOME": str(home)}
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            proc.communicate(timeout=CONVERT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):  # soffice forks soffice.bin: kill the whole group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise LoadError(f"LibreOffice 转换超时（超过 {CONVERT_TIMEOUT_S} 秒）：{path.name}") from None
        out = out_dir / "input.docx"
        if not out.is_file():
            raise LoadError(f"LibreOffice 无法转换该文件（文件可能已损坏）：{path.name}")
        return out.read_bytes()


def _load_office(data: bytes, path: Path) -> tuple[str, str | None]:
    # Many ".doc" files are really .docx or HTML exported by web systems: read those directly.
    if data.startswith(b"PK\x03\x04"):
        return _load_docx(data, path)
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<html", b"<!doctype html", b"<?xml")) and b"<html" in data[:4096].lower():
        return _load_html(data, path)
    return _load_docx(_convert_with_office(data, path), path)


def _load_by_suffix(data: bytes, path: Path, suffix: str) -> tuple[str, str | None]:
    if suffix == ".docx" and data.startswith(_OLE_MAGIC):  # an old .doc renamed to .docx
        return _load_office(data, path)
    loader = {".md": _load_text, ".txt": _load_text, ".html": _load_html, ".htm": _load_html,
              ".docx": _load_docx, ".pdf": _load_pdf}.get(suffix, _load_office)
    return loader(data, path)


def load_document(path: Path) -> SourceDocument:
    """Read one file into a SourceDocument. Raises LoadError (Chinese message) on any failure."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise LoadError(f"不支持的文件类型：{suffix or path.name}（{_SUPPORTED_HINT}）")
    if not path.exists():
        raise LoadError(f"文件不存在：{path}")
    if not path.is_file():
        raise LoadError(f"不是文件：{path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"无法读取文件：{path}（{exc.strerror or exc}）") from exc
    try:
        text, title = _load_by_suffix(data, path, suffix)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - last safety net: never leak a library traceback
        raise LoadError(f"无法读取文件（文件可能已损坏）：{path.name}") from exc
    if not text.strip():
        raise LoadError(f"文件中没有可提取的文字：{path.name}")
    kind = _detect_kind(text)
    return SourceDocument(
        title=_clean_title(title or "") or _clean_title(path.stem) or path.stem, text=text, kind=kind,
        path=str(path), revision_date=_revision_date(text) if kind is DocKind.LAW else None,
        content_hash=hashlib.sha256(data).hexdigest(),
    )


def iter_document_paths(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into loadable files; problems come back as Chinese messages."""
    found: list[Path] = []
    messages: list[str] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        if p.suffix.lower() not in SUPPORTED_EXTENSIONS:
            messages.append(f"已跳过不支持的文件类型：{p}（{_SUPPORTED_HINT}）")
            return
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            candidates = []
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders (.git, ...)
                candidates += [Path(root) / f for f in files
                               if not f.startswith((".", "~$"))  # hidden files, Office lock files
                               and f.lower() not in ("sources.md", "readme.md")]
            for f in sorted(candidates, key=lambda c: c.relative_to(p).parts):
                if f.is_file():
                    add(f)
        elif p.is_file():
            add(p)
        else:
            messages.append(f"路径不存在：{p}")
    return found, messages
