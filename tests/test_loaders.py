"""Tests for knowledge.loaders: formats, encodings, metadata and error messages."""
from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess
from pathlib import Path

import docx
import pytest

from knowledge import loaders
from knowledge.loaders import (
    SUPPORTED_EXTENSIONS,
    LoadError,
    iter_document_paths,
    load_document,
    read_text_bytes,
)
from knowledge.types import DocKind

LIBRARY = Path(__file__).resolve().parents[1] / "knowledge" / "library"
LAWS = sorted(p for p in (LIBRARY / "laws").glob("*.md") if p.name != "SOURCES.md")
SPEECHES = sorted((LIBRARY / "speeches").glob("*.txt"))
SAFETY_LAW = LIBRARY / "laws" / "中华人民共和国安全生产法.md"
SPEECH = LIBRARY / "speeches" / "在2025年全区安全隐患整改工作调度会上的讲话.txt"
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _make_pdf(lines: list[str]) -> bytes:
    """A minimal hand-written PDF: Type0 font with Identity-H encoding, one 2-byte code per
    character equal to its Unicode code point, and an identity ToUnicode CMap, so text
    extraction yields Chinese without embedding any font."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "50 780 Td"]
    ops += ["<" + "".join(f"{ord(c):04X}" for c in line) + "> Tj T*" for line in lines]
    content = "\n".join(ops + ["ET"]).encode("ascii")
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        b"1 beginbfrange <0000> <FFFF> <0000> endbfrange\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end\n"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H "
        b"/DescendantFonts [6 0 R] /ToUnicode 7 0 R >>",
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /STSong-Light /CIDSystemInfo "
        b"<< /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>",
        b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _copy_encoded(tmp_path: Path, name: str, text: str, encoding: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ----------------------------------------------------------------------------- bundled corpus


def test_safety_law_loads_as_law_with_title_and_revision_date():
    doc = load_document(SAFETY_LAW)
    assert doc.kind is DocKind.LAW
    assert doc.title == "中华人民共和国安全生产法"
    assert doc.revision_date == "2021-06-10"


def test_safety_law_metadata_fields():
    raw = SAFETY_LAW.read_bytes()
    doc = load_document(SAFETY_LAW)
    assert doc.content_hash == hashlib.sha256(raw).hexdigest()
    assert doc.path == str(SAFETY_LAW)
    assert doc.text == raw.decode("utf-8")  # verbatim: nothing rewritten


@pytest.mark.parametrize("path", LAWS, ids=lambda p: p.stem)
def test_every_bundled_law_is_a_law_titled_like_its_file(path):
    doc = load_document(path)
    assert (doc.kind, doc.title) == (DocKind.LAW, path.stem)
    assert doc.revision_date is not None


@pytest.mark.parametrize("path", SPEECHES, ids=lambda p: p.stem)
def test_every_bundled_speech_is_an_outline_titled_by_its_file_stem(path):
    doc = load_document(path)
    assert (doc.kind, doc.title, doc.revision_date) == (DocKind.OUTLINE, path.stem, None)


def test_speech_loads_as_outline_titled_by_file_stem():
    doc = load_document(SPEECH)
    assert doc.kind is DocKind.OUTLINE
    assert doc.title == "在2025年全区安全隐患整改工作调度会上的讲话"
    assert doc.text == SPEECH.read_text("utf-8")


# ----------------------------------------------------------------------------- encodings


def test_gbk_gb18030_and_utf8_bom_copies_decode_to_the_same_text(tmp_path):
    text = SPEECH.read_text("utf-8")
    copies = {}
    for encoding in ("gbk", "gb18030", "utf-8-sig"):
        folder = tmp_path / encoding
        folder.mkdir()
        copies[encoding] = _copy_encoded(folder, SPEECH.name, text, encoding)
    for encoding, path in copies.items():
        doc = load_document(path)
        assert doc.text == text, encoding
        assert doc.title == SPEECH.stem, encoding


def test_short_gbk_text_is_not_mistaken_for_another_encoding():
    for sample in ("安全生产", "第一条　消防", "隐患整改台账"):
        assert read_text_bytes(sample.encode("gbk")) == sample


def test_gb18030_four_byte_characters_decode():
    sample = "《安全生产法》𠮷䶮€"
    assert read_text_bytes(sample.encode("gb18030")) == sample


def test_utf8_file_with_one_damaged_byte_stays_utf8():
    text = SPEECH.read_text("utf-8")
    data = text.encode("utf-8")[:-1]  # cut in the middle of the last character
    decoded = read_text_bytes(data)
    assert decoded.startswith(text[:200])


def test_crlf_and_control_characters_are_normalised(tmp_path):
    path = tmp_path / "通知.txt"
    path.write_bytes("第一行\r\n第二\x07行\r第三行\x0c\n".encode("utf-8"))
    assert load_document(path).text == "第一行\n第二行\n第三行\n"


def test_random_binary_named_txt_raises_load_error(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(LoadError, match="文本"):
        load_document(path)


def test_random_binary_without_nul_bytes_is_still_rejected(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(random.Random(1).randbytes(4096).replace(b"\x00", b""))
    with pytest.raises(LoadError) as info:
        load_document(path)
    assert CHINESE.search(str(info.value))


# ----------------------------------------------------------------------------- structure


def test_indented_articles_without_info_marker_are_a_law_with_header_date(tmp_path):
    path = tmp_path / "某市安全生产条例.txt"
    path.write_text(
        "某市安全生产条例\n（2019年3月1日通过　2023年11月30日修正）\n"
        "　　第一条　为了加强安全生产，制定本条例。\n"
        "　　第二条　本条例适用于本市。\n"
        "　　第三条　本条例自2024年1月1日起施行。\n",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert (doc.kind, doc.revision_date) == (DocKind.LAW, "2023-11-30")


def test_title_marks_are_stripped(tmp_path):
    path = tmp_path / "law.md"
    path.write_text("# 《城镇燃气管理条例》\n\n第一条 内容。\n", encoding="utf-8")
    assert load_document(path).title == "城镇燃气管理条例"


# ----------------------------------------------------------------------------- other formats


def test_docx_round_trips_text_and_title(tmp_path):
    document = docx.Document()
    document.add_paragraph("关于开展燃气安全专项检查的通知")
    document.add_paragraph("各乡镇、各部门：现将有关事项通知如下。")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("单位", "责任人"), ("应急局", "张三")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("特此通知。")
    path = tmp_path / "notice.docx"
    document.save(path)
    doc = load_document(path)
    assert doc.title == "关于开展燃气安全专项检查的通知"
    assert doc.text == (
        "关于开展燃气安全专项检查的通知\n各乡镇、各部门：现将有关事项通知如下。\n"
        "单位\t责任人\n应急局\t张三\n特此通知。"
    )
    assert doc.kind is DocKind.OUTLINE


def test_docx_title_prefers_core_properties(tmp_path):
    document = docx.Document()
    document.core_properties.title = "《工伤保险条例》"
    document.add_paragraph("第一条 为了保障工伤职工获得医疗救治。")
    path = tmp_path / "x.docx"
    document.save(path)
    assert load_document(path).title == "工伤保险条例"


def test_docx_with_sentence_first_line_is_titled_by_file_stem(tmp_path):
    document = docx.Document()
    document.add_paragraph("同志们：今天召开会议，主要任务是部署工作。")
    path = tmp_path / "县长讲话.docx"
    document.save(path)
    assert load_document(path).title == "县长讲话"


def test_corrupt_docx_raises_chinese_load_error(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(random.Random(2).randbytes(2048))
    with pytest.raises(LoadError) as info:
        load_document(path)
    assert CHINESE.search(str(info.value)) and "broken.docx" in str(info.value)


def test_pdf_with_chinese_text_loads(tmp_path):
    path = tmp_path / "安全生产许可证条例.pdf"
    path.write_bytes(_make_pdf(["第一条　为了严格规范安全生产条件。", "第二条　国家实行安全生产许可制度。",
                                "第三条　Safety first."]))
    doc = load_document(path)
    assert "第一条\u3000为了严格规范安全生产条件。" in doc.text
    assert (doc.title, doc.kind) == ("安全生产许可证条例", DocKind.LAW)


def test_corrupt_pdf_raises_chinese_load_error(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n" + random.Random(3).randbytes(2048))
    with pytest.raises(LoadError, match="无法读取 PDF"):
        load_document(path)


def test_html_drops_script_and_separates_blocks(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>《消防安全通知》</title><style>p{color:red}</style></head><body>"
        "<script>var secret = 'alert';</script><h1>标题</h1><p>第一段<b>加粗</b>文字</p>"
        "<div>第二段</div><!-- 注释 --></body></html>",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert doc.text == "标题\n第一段加粗文字\n第二段"
    assert doc.title == "消防安全通知"


def test_gbk_html_with_meta_charset_decodes(tmp_path):
    path = tmp_path / "page.htm"
    path.write_bytes('<meta charset="gb2312"><h1>隐患排查</h1><p>内容</p>'.encode("gbk"))
    doc = load_document(path)
    assert (doc.title, doc.text) == ("隐患排查", "隐患排查\n内容")


# ----------------------------------------------------------------------------- errors and paths


def test_unsupported_extension_raises_load_error(tmp_path):
    path = tmp_path / "a.xyz"
    path.write_text("x")
    with pytest.raises(LoadError, match=r"不支持的文件类型：\.xyz"):
        load_document(path)


def test_missing_file_raises_load_error(tmp_path):
    with pytest.raises(LoadError, match="文件不存在"):
        load_document(tmp_path / "nope.md")


def test_iter_document_paths_expands_folders_and_reports_problems(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("b.md", "sub/a.txt", "README.md", "SOURCES.md", ".hidden.md", ".git/x.md",
                 "~$lock.docx", "image.png"):
        (tmp_path / name).write_text("x")
    missing = tmp_path / "missing"
    found, messages = iter_document_paths([tmp_path, missing])
    assert found == [tmp_path / "b.md", tmp_path / "sub" / "a.txt"]
    assert len(messages) == 2
    assert "image.png" in messages[0] and "不支持" in messages[0]
    assert "路径不存在" in messages[1] and str(missing) in messages[1]


def test_supported_extensions():
    assert SUPPORTED_EXTENSIONS == {".md", ".txt", ".docx", ".pdf", ".html", ".htm", ".doc", ".wps"}


def test_doc_without_libreoffice_names_the_missing_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders.shutil, "which", lambda _name: None)
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    with pytest.raises(LoadError, match="LibreOffice") as info:
        load_document(path)
    assert "soffice" in str(info.value)


def test_doc_that_is_really_html_loads_without_libreoffice(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders.shutil, "which", lambda _name: None)
    path = tmp_path / "导出.doc"
    path.write_text("<html><body><p>应急预案</p></body></html>", encoding="utf-8")
    assert load_document(path).text == "应急预案"


@pytest.mark.skipif(
    not (shutil.which("soffice") or shutil.which("libreoffice")),
    reason="LibreOffice (soffice) is not installed",
)
def test_real_doc_converts_through_libreoffice(tmp_path):
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    document = docx.Document()
    document.add_paragraph("关于加强冬季消防安全工作的通知")
    document.add_paragraph("各单位要落实消防安全责任。")
    source = tmp_path / "notice.docx"
    document.save(source)
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(
        [exe, "--headless", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
         "--convert-to", "doc", "--outdir", str(tmp_path / "out"), str(source)],
        check=True, timeout=120, capture_output=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    doc = load_document(tmp_path / "out" / "notice.doc")
    assert "各单位要落实消防安全责任。" in doc.text
    assert doc.title == "关于加强冬季消防安全工作的通知"
