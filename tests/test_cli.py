"""The `safeduty` command end to end: JSONL interfaces, console channel through stdin, errors."""
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bot.cli import main


@pytest.fixture
def run(kb_dir, bundled_kb, lexical_config_file):
    """Invoke the CLI in-process against the session's (already ingested) data directory."""

    def invoke(*args, input=None):
        runner = CliRunner()
        argv = [*args, "--data-dir", str(kb_dir), "--config", str(lexical_config_file)]
        return runner.invoke(main, argv, input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "安全生产法第二十一条讲什么"},
        {"id": "b", "question": "周杰伦演唱会门票多少钱"},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_kb_search_jsonl_shape(run, questions):
    result = run("kb", "search", "--questions", str(questions), "--k", "3", "--jsonl")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    first = lines[0]["results"][0]
    assert set(first) == {"text", "source", "article", "score"}
    assert first["source"] == "中华人民共和国安全生产法" and first["article"] == "第二十一条"
    assert len(lines[0]["results"]) == 3


def test_ask_jsonl_shape_and_refusal(run, questions):
    result = run("ask", "--questions", str(questions), "--jsonl")
    assert result.exit_code == 0
    a, b = [json.loads(line) for line in result.output.splitlines()]
    assert a["answered"] is True and a["citations"][0]["article"] == "第二十一条"
    assert set(a["citations"][0]) == {"source", "article", "text"}
    assert b["answered"] is False and b["citations"] == []


def test_ask_once(run):
    result = run("ask", "消防法第十六条")
    assert result.exit_code == 0 and "《中华人民共和国消防法》第十六条" in result.output


def test_kb_list_shows_bundled_documents(run):
    result = run("kb", "list")
    assert "《中华人民共和国安全生产法》" in result.output
    assert "修订 2021-06-10" in result.output


def test_malformed_questions_file_is_a_clear_error(run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["kb", "search", "--questions", str(bad), "--data-dir", "/nonexistent-x"])
    assert result.exit_code == 2
    assert "错误" in result.output


def test_missing_path_on_ingest_exits_non_zero(run, tmp_path):
    result = run("kb", "ingest", str(tmp_path / "missing.docx"))
    assert result.exit_code == 1
    assert "不存在" in result.output


def test_bad_config_stops_with_file_line(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("knowledge:\n  embeding: {}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["kb", "list", "--config", str(cfg), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{cfg}:2" in result.output and "knowledge.embeding" in result.output


def test_console_chat_scripted_through_stdin(kb_dir, bundled_kb, lexical_config_file):
    """The real console channel in a real process: one message per line, each reply then ---."""
    script = "/help\n安全生产法第三条\n/nonsense\n"
    env = {**os.environ, "SAFEDUTY_DATA_DIR": str(kb_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", "--user", "u7", "--chat", "g1", "--config", str(lexical_config_file)],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    replies = [r.strip() for r in proc.stdout.split("---\n") if r.strip()]
    assert len(replies) == 3
    assert "/article" in replies[0]
    assert "管行业必须管安全" in replies[1]
    assert "没有 /nonsense 这个命令" in replies[2]
    assert "Traceback" not in proc.stderr
