"""The `safeduty` command: chat, ask, and knowledge-base administration.

Every command takes --data-dir (or SAFEDUTY_DATA_DIR) and --config. Errors are printed as one clear
message with a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from pathlib import Path

import click

from bot.config import ConfigError, load_config, resolve_data_dir

log = logging.getLogger(__name__)


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"错误：{self.message}", err=True)


def common_options(func):
    @click.option("--data-dir", "data_dir", default=None, help="数据目录（默认 ~/.safeduty，或环境变量 SAFEDUTY_DATA_DIR）")
    @click.option("--config", "config_path", default=None, type=click.Path(), help="配置文件（默认随附的 config.yaml）")
    @functools.wraps(func)
    def wrapper(*args, data_dir=None, config_path=None, **kwargs):
        from bot.storage.db import DatabaseNotMigrated
        from knowledge.embeddings import EmbeddingError
        from knowledge.index import KnowledgeIndexError

        try:
            config = load_config(Path(config_path) if config_path else None)
            ctx = click.get_current_context()
            data_dir = data_dir or ctx.find_root().params.get("data_dir")
            return func(*args, config=config, data_dir=data_dir, **kwargs)
        except (ConfigError, KnowledgeIndexError, EmbeddingError, DatabaseNotMigrated) as exc:
            raise UserError(str(exc)) from exc

    return wrapper


def _services(config, data_dir, ingest: bool = True):
    from bot.app import build_services, setup_logging

    setup_logging(config, resolve_data_dir(config, data_dir))
    return build_services(config, data_dir, ingest=ingest)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", "data_dir", default=None, help="数据目录（也可写在子命令后）")
def main(data_dir):
    """安全生产值守助手 SafeDuty."""


@main.command()
@click.option("--user", default="console-user", help="说话人的用户 ID")
@click.option("--chat", default="console", help="会话 ID")
@common_options
def chat(user, chat, config, data_dir):
    """在终端里聊天；标准输入不是终端时逐行读取消息并打印答复。"""
    from bot.app import run_chat_session
    from bot.channels.console import ConsoleChannel

    services = _services(config, data_dir)
    try:
        asyncio.run(run_chat_session(services, ConsoleChannel(user=user, chat=chat), {user, chat}))
    except KeyboardInterrupt:
        click.echo("\n再见。")


def _read_questions(path: str) -> list[dict]:
    try:
        raw = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"无法读取问题文件 {path}：{exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"问题文件 {path} 不是 UTF-8 编码") from exc
    questions = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            questions.append({"id": item["id"], "question": str(item["question"])})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path}:{n}: 每行应为含 id 和 question 的 JSON 对象（{exc}）") from exc
    return questions


def _citation_json(c) -> dict:
    return {"source": c.source, "article": c.article, "text": c.text}


@main.command()
@click.argument("question", required=False)
@click.option("--questions", "questions_file", default=None, help="JSONL 文件，每行 {id, question}")
@click.option("--jsonl", is_flag=True, help="以 JSON Lines 输出")
@common_options
def ask(question, questions_file, jsonl, config, data_dir):
    """回答一个问题（或 --questions 文件中的每个问题）。"""
    if not question and not questions_file:
        raise UserError("请给出问题，例如：safeduty ask \"安全生产法第二十一条讲什么\"")
    services = _services(config, data_dir)
    items = _read_questions(questions_file) if questions_file else [{"id": None, "question": question}]
    for item in items:
        answer = services.kb.ask(item["question"][: config.knowledge.max_question_chars])
        if jsonl:
            record = {
                "id": item["id"],
                "answered": answer.answered,
                "answer": answer.text,
                "citations": [_citation_json(c) for c in answer.citations],
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(answer.text)


@main.group()
def kb():
    """知识库管理：导入、列出、删除、检索。"""


@kb.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--reset", is_flag=True, help="清空现有索引后重建（索引损坏或换了 Chroma 版本时用）")
@common_options
def kb_ingest(paths, reset, config, data_dir):
    """导入文件或文件夹（.md .txt .docx .pdf .html；.doc/.wps 需 LibreOffice）。@bundled 表示随附的法规库。"""
    from bot.app import build_knowledge, setup_logging
    from knowledge.base import BUNDLED_LIBRARY

    resolved = resolve_data_dir(config, data_dir)
    setup_logging(config, resolved)
    kb_ = build_knowledge(config, resolved, reset=reset)
    targets = [BUNDLED_LIBRARY if p == "@bundled" else Path(p) for p in paths]
    report = kb_.ingest_paths(targets)
    for title in report.added:
        click.echo(f"新增：《{title}》")
    for title in report.replaced:
        click.echo(f"更新：《{title}》（旧版本已替换）")
    for title in report.older:
        click.echo(f"未替换：《{title}》比知识库中的版本更旧（按正文所载修订日期）", err=True)
    if report.unchanged:
        click.echo(f"未变化（跳过）：{len(report.unchanged)} 个文件")
    for problem in report.errors:
        click.echo(f"未导入：{problem}", err=True)
    click.echo(f"知识库现有 {len(kb_.index.documents())} 个文件、{len(kb_.index.chunks)} 个段落。")
    if report.errors:
        sys.exit(1)


@kb.command("list")
@click.option("--json", "as_json", is_flag=True)
@common_options
def kb_list(as_json, config, data_dir):
    """列出知识库中的文件。"""
    services = _services(config, data_dir, ingest=False)
    docs = services.kb.index.documents()
    if as_json:
        click.echo(json.dumps([d.__dict__ for d in docs], ensure_ascii=False, indent=1))
        return
    if not docs:
        click.echo("知识库是空的。用 safeduty kb ingest 路径 导入文件。")
    for d in docs:
        rev = f"  修订 {d.revision_date}" if d.revision_date else ""
        click.echo(f"《{d.title}》  {d.chunks} 段{rev}  {d.path}")


@kb.command("remove")
@click.argument("title")
@common_options
def kb_remove(title, config, data_dir):
    """按标题（或法规简称）删除一个文件。"""
    services = _services(config, data_dir, ingest=False)
    if not services.kb.remove(title):
        raise UserError(f"知识库中没有《{title.strip('《》')}》。用 safeduty kb list 查看已有文件。")
    click.echo(f"已删除：《{title.strip('《》')}》")


@kb.command("search")
@click.argument("question", required=False)
@click.option("--questions", "questions_file", default=None, help="JSONL 文件，每行 {id, question}")
@click.option("--k", "k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--jsonl", is_flag=True, help="以 JSON Lines 输出")
@common_options
def kb_search(question, questions_file, k, jsonl, config, data_dir):
    """检索段落（不生成答复）。"""
    if not question and not questions_file:
        raise UserError("请给出检索词或 --questions 文件")
    services = _services(config, data_dir)
    items = _read_questions(questions_file) if questions_file else [{"id": None, "question": question}]
    for item in items:
        retrieval = services.kb.search(item["question"][: config.knowledge.max_question_chars], k=k)
        results = [
            {
                "text": h.chunk.text,
                "source": h.chunk.doc_title,
                "article": h.chunk.article,
                "score": round(h.score, 6),
            }
            for h in retrieval.hits
        ]
        if jsonl:
            click.echo(json.dumps({"id": item["id"], "results": results}, ensure_ascii=False))
        else:
            for i, r in enumerate(results, start=1):
                label = f"《{r['source']}》{r['article'] or ''}"
                click.echo(f"{i}. {label}  {r['score']:.4f}\n   {r['text'][:120]}")


@main.group()
def db():
    """隐患台账数据库：迁移。"""


@db.command("upgrade")
@common_options
def db_upgrade(config, data_dir):
    """把数据库迁移到最新版本（SQLite 或 database.url 指定的 PostgreSQL）。"""
    from bot.app import configured_database_url, open_database
    from bot.storage.db import current_revision, database_url, make_engine, upgrade

    resolved = resolve_data_dir(config, data_dir)
    resolved.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url(configured_database_url(config), resolved))
    before = current_revision(engine)
    upgrade(engine)
    open_database(config, resolved, auto_init=False)
    after = current_revision(engine)
    click.echo("数据库已是最新版本。" if before == after else f"数据库已迁移：{before or '空库'} → {after}")


@kb.command("export-vectors", hidden=True)
@common_options
def kb_export_vectors(config, data_dir):
    """（维护用）把当前索引的向量写入随附的向量缓存 knowledge/vectors/。"""
    from knowledge.base import BUNDLED_VECTORS
    from knowledge.index import VectorCache

    services = _services(config, data_dir)
    if services.kb.index.embedder is None:
        raise UserError("当前配置没有向量模型（embedding.provider: none），无需导出。")
    path = BUNDLED_VECTORS / f"{services.kb.index.embedder.name}.npz"
    count = VectorCache.write(path, services.kb.index)
    click.echo(f"已写入 {count} 个向量：{path}")


# Command groups that live in their own modules register themselves on `main` when imported.
from bot import cli_duty, cli_groups, cli_hazards, cli_outbox, cli_people, cli_schedule, cli_serve, cli_supervision  # noqa: E402,F401,E501

if __name__ == "__main__":
    # Under `python -m bot.cli` this file is __main__; the groups registered themselves on the
    # imported bot.cli module, so run that one.
    from bot.cli import main as registered_main

    registered_main()
