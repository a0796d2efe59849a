"""Ingestion into the real Chroma + BM25 index: hashing, revisions, interruption, bad files."""
from pathlib import Path

import pytest

from bot.app import build_knowledge
from tests.conftest import LIBRARY, lexical_config

LAW_V1 = """# 测试安全条例

2020年1月1日 测试公布

<!-- INFO END -->

## 第一章 总则

第一条 为了测试，制定本条例。

第二条 生产经营单位应当每季度组织一次应急演练。

第三条 本条例自公布之日起施行。
"""


@pytest.fixture
def kb(tmp_path):
    return build_knowledge(lexical_config(), tmp_path / "data")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_ingest_then_reingest_unchanged_does_nothing(kb, tmp_path):
    law = write(tmp_path / "law.md", LAW_V1)
    assert kb.ingest_paths([law]).added == ["测试安全条例"]
    report = kb.ingest_paths([law])
    assert report.unchanged == ["测试安全条例"] and not report.added and not report.replaced


def test_new_revision_replaces_old_one(kb, tmp_path):
    law = write(tmp_path / "law.md", LAW_V1)
    kb.ingest_paths([law])
    write(law, LAW_V1.replace("每季度", "每月").replace("2020年1月1日", "2024年6月1日"))
    assert kb.ingest_paths([law]).replaced == ["测试安全条例"]
    texts = [c.text for c in kb.index.chunks if c.doc_title == "测试安全条例"]
    assert any("每月组织一次应急演练" in t for t in texts)
    assert not any("每季度" in t for t in texts)
    assert len(kb.index.documents()) == 1
    assert kb.index.documents()[0].revision_date == "2024-06-01"


def test_interrupted_ingest_leaves_previous_revision_usable(kb, tmp_path, monkeypatch):
    law = write(tmp_path / "law.md", LAW_V1)
    kb.ingest_paths([law])
    write(law, LAW_V1.replace("每季度", "每月"))

    def crash(*args, **kwargs):  # the process dies just before the revision goes live
        raise KeyboardInterrupt

    monkeypatch.setattr(kb.index._docs, "upsert", crash)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest_paths([law])
    monkeypatch.undo()
    kb.index.reload()
    answer = kb.ask("测试安全条例第二条")
    assert "每季度组织一次应急演练" in answer.text
    assert kb.index.sweep() > 0  # the half-written revision is swept on the next ingest
    assert kb.ingest_paths([law]).replaced == ["测试安全条例"]


def test_gbk_text_file_is_ingested(kb, tmp_path):
    speech = write(tmp_path / "在全镇安全生产会议上的讲话.txt", "一、压实责任\n各村要落实网格员每周巡查制度。\n", "gbk")
    assert kb.ingest_paths([speech]).added == ["在全镇安全生产会议上的讲话"]
    assert "网格员每周巡查" in kb.ask("网格员多久巡查一次").text


def test_bad_files_are_reported_not_fatal(kb, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    good = write(docs / "law.md", LAW_V1)
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (docs / "notes.xyz").write_text("?")
    report = kb.ingest_paths([docs, docs / "missing.md"])
    assert report.added == ["测试安全条例"]
    assert len(report.errors) == 3
    assert good.exists()


def test_remove_by_alias(tmp_path):
    kb = build_knowledge(lexical_config(), tmp_path / "data")
    kb.ingest_paths([LIBRARY / "laws" / "中华人民共和国消防法.md"])
    assert kb.remove("消防法")
    assert kb.is_empty()
    assert not kb.remove("消防法")


def test_index_survives_reopening(tmp_path):
    data = tmp_path / "data"
    first = build_knowledge(lexical_config(), data)
    first.ingest_paths([LIBRARY / "laws" / "安全生产许可证条例.md"])
    reopened = build_knowledge(lexical_config(), data)
    assert "安全生产许可证条例" in reopened.index.titles
    assert reopened.ask("安全生产许可证条例第二条").answered


def test_unreadable_chroma_directory_gives_clear_error(tmp_path):
    from knowledge.index import KnowledgeIndexError

    chroma = tmp_path / "data" / "kb" / "chroma"
    chroma.mkdir(parents=True)
    (chroma / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(KnowledgeIndexError, match="kb ingest --reset"):
        build_knowledge(lexical_config(), tmp_path / "data")


def test_library_is_reingested_only_when_its_files_change(tmp_path):
    from bot.app import ensure_library

    library = tmp_path / "library"
    library.mkdir()
    law = write(library / "law.md", LAW_V1)
    config = lexical_config()
    config.knowledge.library = [str(library)]
    data = tmp_path / "data"
    kb = build_knowledge(config, data)
    ensure_library(config, kb, data)
    assert "测试安全条例" in kb.index.titles
    write(law, LAW_V1.replace("每季度", "每月"))
    ensure_library(config, kb, data)  # a new release of the library is picked up on start
    assert any("每月组织一次应急演练" in c.text for c in kb.index.chunks)


def test_older_revision_does_not_replace_newer_one(kb, tmp_path):
    new = write(tmp_path / "new.md", LAW_V1.replace("2020年1月1日", "2024年6月1日").replace("每季度", "每月"))
    old = write(tmp_path / "old.md", LAW_V1)
    kb.ingest_paths([new])
    report = kb.ingest_paths([old])
    assert report.older == ["测试安全条例"] and not report.replaced
    assert any("每月组织一次应急演练" in c.text for c in kb.index.chunks)
