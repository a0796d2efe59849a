"""Composition root: the only place that reads the configuration and wires the parts together."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from bot.clock import Clock, system_clock
from bot.config import Config, resolve_data_dir
from bot.storage.db import check_migrated, current_revision, database_url, make_engine, session_factory, upgrade
from knowledge.answer import AnswerStyle
from knowledge.base import BUNDLED_LIBRARY, BUNDLED_VECTORS, KnowledgeBase
from knowledge.embeddings import EmbeddingSpec, create_embedder
from knowledge.index import KnowledgeIndex, VectorCache, open_chroma
from knowledge.lexical import Segmenter
from knowledge.phrasings import BUNDLED_PHRASINGS, load_phrasings
from knowledge.retrieve import RetrievalSettings
from knowledge import vocabulary

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What handlers may use. Built once per process."""

    config: Config
    data_dir: Path
    kb: KnowledgeBase
    db: sessionmaker | None = None  # the ledger database (None only in knowledge-only tests)
    clock: Clock = field(default_factory=system_clock)
    extras: dict = field(default_factory=dict)


def configured_database_url(config: Config) -> str:
    """database.url, or the URL held in the environment variable named by database.url_env."""
    if config.database.url:
        return config.database.url
    return os.environ.get(config.database.url_env, "") if config.database.url_env else ""


def open_database(config: Config, data_dir: Path, auto_init: bool = True) -> Engine:
    """The ledger database, checked to be at the latest migration.

    A brand-new embedded SQLite file is initialised on first start (so the first run needs no extra
    step); any other database that is behind — or a server database never migrated — is refused
    with a message pointing at `safeduty db upgrade`.
    """
    configured = configured_database_url(config)
    engine = make_engine(database_url(configured, data_dir))
    if auto_init and not configured and current_revision(engine) is None:
        log.info("initialising the embedded ledger database at %s", engine.url)
        upgrade(engine)
    check_migrated(engine)
    return engine


def library_paths(config: Config) -> list[Path]:
    return [BUNDLED_LIBRARY if p == "@bundled" else Path(p).expanduser() for p in config.knowledge.library]


def phrasing_paths(config: Config) -> list[Path]:
    return [BUNDLED_PHRASINGS if p == "@bundled" else Path(p).expanduser() for p in config.knowledge.phrasings]


def build_knowledge(config: Config, data_dir: Path, reset: bool = False) -> KnowledgeBase:
    k = config.knowledge
    kb_dir = data_dir / "kb"
    if reset and not k.chroma.url:
        import shutil

        shutil.rmtree(kb_dir / "chroma", ignore_errors=True)
    client = open_chroma(kb_dir, k.chroma.url)
    embedder = create_embedder(EmbeddingSpec(**k.embedding.model_dump()))
    segmenter = Segmenter(vocabulary.domain_terms())
    cache = VectorCache(BUNDLED_VECTORS / f"{embedder.name}.npz") if embedder else None
    index = KnowledgeIndex(client, embedder, segmenter, k.max_chunk_chars, vector_cache=cache,
                           phrasings=load_phrasings(phrasing_paths(config)))
    style = AnswerStyle(
        max_reply_chars=k.answer.max_reply_chars,
        further_sources=k.answer.further_sources,
        min_confidence=k.answer.min_confidence,
        min_topic_margin=k.answer.min_topic_margin,
        min_example_margin=k.answer.min_example_margin,
        admin_contact=config.bot.admin_contact,
    )
    retrieval = RetrievalSettings(
        fusion=k.retrieval.fusion,
        lexical_weight=k.retrieval.lexical_weight,
        dense_weight=k.retrieval.dense_weight,
        phrasing_weight=k.retrieval.phrasing_weight,
    )
    return KnowledgeBase(index, style, lock_path=kb_dir / "ingest.lock", llm_settings=k.llm, retrieval=retrieval,
                         cache_size=k.answer_cache_size)


def _library_fingerprint(paths: list[Path]) -> str:
    """Names, sizes and mtimes of the library files: cheap, and changes whenever a file does."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                st = f.stat()
                digest.update(f"{f}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def ensure_library(config: Config, kb: KnowledgeBase, data_dir: Path) -> None:
    """Index the configured library on first start, and again whenever its files change
    (a new release of the bundled laws); unchanged documents are skipped by content hash."""
    if not config.knowledge.auto_ingest_bundled:
        return
    paths = library_paths(config)
    marker = data_dir / "kb" / "library.fingerprint"
    fingerprint = _library_fingerprint(paths)
    if not kb.is_empty() and marker.exists() and marker.read_text() == fingerprint:
        return
    report = kb.ingest_paths(paths)
    log.info(
        "library ingest: %d added, %d replaced, %d unchanged, %d problems",
        len(report.added), len(report.replaced), len(report.unchanged), len(report.errors),
    )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)


def build_services(config: Config, data_dir_override: str | None = None, ingest: bool = True) -> Services:
    data_dir = resolve_data_dir(config, data_dir_override)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_database(config, data_dir)
    kb = build_knowledge(config, data_dir)
    if ingest:
        ensure_library(config, kb, data_dir)
    return Services(
        config=config, data_dir=data_dir, kb=kb, db=session_factory(engine), clock=system_clock(config.bot.timezone)
    )


def setup_logging(config: Config, data_dir: Path) -> None:
    """Log lines go to a file in the data directory; only errors reach the terminal."""
    root = logging.getLogger()
    if any(getattr(h, "_safeduty", False) for h in root.handlers):
        return
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(data_dir / "logs" / "safeduty.log", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.INFO)
    file_handler._safeduty = True  # type: ignore[attr-defined]
    console = logging.StreamHandler()
    console.setLevel(getattr(logging, config.bot.log_level))
    console._safeduty = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    for noisy in ("chromadb", "httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def start_schedules(services: Services):
    """Start the scheduler that turns rosters, hazards and config into outbox pushes (as the console
    and `safeduty serve` both do); None when schedules are off, there is no database, or it fails."""
    if not services.config.schedules.enabled or services.db is None:
        return None
    from schedules.calendar import HolidayCalendar
    from schedules.scheduler import Runtime, build_scheduler, start_scheduler

    runtime = Runtime(db=services.db, config=services.config,
                      calendar=HolidayCalendar(services.config.schedules), clock=services.clock)
    scheduler = build_scheduler(services.db.kw["bind"], services.config)
    try:
        start_scheduler(scheduler, runtime)
    except Exception:  # pushes must never stop the chat from answering
        log.exception("scheduler failed to start; chatting without scheduled pushes")
        return None
    return scheduler


def make_dispatch(services: Services, scheduler=None, answerer=None):
    """The async dispatch every channel calls: safe_route in a worker thread, then — after a
    command that may have changed hazards, rosters or items — a re-derivation of the jobs (at most
    every 5 s).

    Two lanes: a question the knowledge base has not answered before costs 20–40 ms (embedding +
    retrieval); a repeated question or a command well under 1 ms. In one queue a burst of new
    questions held up every quick message behind it; in its own lane a new question only waits for
    other new questions. Which lane is decided without the database, so any other free text (a reply
    inside a report conversation, say) takes the slow lane too. The slow lane is `retrieval_threads`
    threads, or, given `answerer` (a bot.answer_pool.ProcessAnswerer), worker processes."""
    import asyncio
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    from bot.router import safe_route

    last_sync = [0.0]
    server = services.config.channels.server
    def one_embedding_thread() -> None:  # see ServerSettings.retrieval_threads
        embedder = getattr(getattr(services.kb, "index", None), "embedder", None)
        if hasattr(embedder, "use_one_thread_here"):
            embedder.use_one_thread_here()

    # Few threads: answering is mostly Python under the GIL, which the event loop answering
    # webhooks also needs. (bench/webhook_load.py measured 2 and 6 threads alike on 2 cores.)
    quick = ThreadPoolExecutor(max_workers=server.answer_threads, thread_name_prefix="answer",
                               initializer=one_embedding_thread)
    slow = None if answerer is not None else ThreadPoolExecutor(
        max_workers=server.retrieval_threads, thread_name_prefix="retrieve", initializer=one_embedding_thread)

    def lane(text: str) -> tuple[str, str]:
        """('quick' | 'slow', the question the knowledge base would be asked)."""
        question = text.strip()
        if question.startswith("/"):
            command, _, rest = question.partition(" ")
            if command.split("@")[0].lower() != "/ask":
                return "quick", ""
            question = rest.strip()
        if not question or services.kb is None or services.kb.answers.holds(question):
            return "quick", question
        return "slow", question

    async def dispatch(incoming):
        loop = asyncio.get_running_loop()
        which, question = lane(incoming.text)
        if which == "slow" and answerer is not None:
            replies = await answerer(incoming, question)
        else:
            replies = await loop.run_in_executor(quick if which == "quick" else slow, safe_route, incoming, services)
        if scheduler is not None and incoming.text.strip().startswith(("/", "确认", "到岗")) \
                and _time.monotonic() - last_sync[0] > 5:
            from schedules.scheduler import resync

            last_sync[0] = _time.monotonic()
            try:
                await asyncio.to_thread(resync)
            except Exception:
                log.exception("re-deriving scheduled pushes failed")
        return replies

    dispatch.lane = lambda text: lane(text)[0]  # for tests: which lane a text would take
    return dispatch


async def run_chat_session(services: Services, channel, recipients: set[str]) -> None:
    """A local chat session (the console): the channel, the scheduler that turns rosters, hazards
    and config into pushes, and a sender that delivers this session's own pushes — one process.

    Other people's pushes stay in the outbox for their own sessions (or the platform senders of
    `safeduty serve`); a crash loses nothing, the outbox and the job store are in the database.
    """
    import asyncio

    from bot.delivery import ReplyChannelAdapter, Sender
    from bot.types import Reply

    scheduler = start_schedules(services)

    class _PushPrinter:
        """Pushes look different from replies in the terminal."""

        name = channel.name

        async def send(self, chat: str, reply: Reply) -> None:
            await channel.send(chat, Reply("【推送】" + reply.text))

    sender = Sender(services.db, {channel.name: ReplyChannelAdapter(_PushPrinter())}, services.config.outbox,
                    services.clock, recipients={channel.name: recipients}) if services.db is not None else None
    dispatch = make_dispatch(services, scheduler)

    stop = asyncio.Event()
    task = asyncio.create_task(sender.run_forever(stop=stop)) if sender else None
    try:
        await channel.run(dispatch)
    finally:
        stop.set()
        if task:
            await task
        if scheduler is not None:
            scheduler.shutdown(wait=False)
