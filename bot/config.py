"""The one configuration file, config.yaml: every section is a pydantic model validated at start.

A wrong key or a wrong type stops the program with a message naming the key and its line in the file.
Secrets never live here: the file names environment variables that hold them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChromaSettings(_Section):
    url: str = ""  # empty: embedded PersistentClient in the data directory; else http://host:port


class EmbeddingSettings(_Section):
    provider: Literal["none", "e5-small", "use-multilingual", "sentence-transformers", "openai"] = "e5-small"
    model_dir: str = ""  # for sentence-transformers: a local model directory
    base_url: str = ""  # for openai: e.g. http://127.0.0.1:9997/v1
    model: str = ""
    api_key_env: str = ""  # name of the environment variable holding the key
    # CPU threads (OpenMP) of the built-in models (e5-small, USE) per embedding: 2 answers a new
    # question faster on an idle machine (~28 vs ~43 ms) at more CPU (~55 vs ~42 ms). Set 1 on a
    # machine shared with other busy work: with 2, an embedding stalled for over a second whenever
    # the other core was saturated. `safeduty serve` answers with one per question (its retrieval
    # threads and answer processes work on several questions at once instead).
    threads: int = Field(2, ge=1, le=64)


class LLMSettings(_Section):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:11434/v1"
    model: str = "qwen2.5:7b-instruct"
    api_key_env: str = "SAFEDUTY_LLM_API_KEY"
    timeout_seconds: float = Field(8.0, gt=0)
    max_tokens: int = Field(400, gt=0)
    temperature: float = Field(0.1, ge=0, le=2)


class AnswerSettings(_Section):
    max_reply_chars: int = Field(1000, ge=200, le=4000)
    further_sources: int = Field(2, ge=0, le=5)
    # Evidence (word coverage of the best passage) below which the bot declines to answer.
    min_confidence: float = Field(0.2, ge=0, le=1)
    # With an embedding model: how much nearer a question must be to safety topics than to
    # everyday non-safety topics (tax, pensions, weather ...) to be answered.
    min_topic_margin: float = Field(-0.025, ge=-1, le=1)
    # With phrasings: how much nearer a question must be to the library's phrasings than to the
    # nearest question the library does not answer (everyday chat, practical how-tos, local services:
    # knowledge/*_questions.txt, practical_tips.txt) to be answered; 0 is the nearest-neighbour rule.
    min_example_margin: float = Field(0.0, ge=-1, le=1)


class RetrievalSettings(_Section):
    fusion: Literal["score", "rank"] = "score"  # score fusion measured better than RRF (docs/benchmarks.md)
    lexical_weight: float = Field(0.6, ge=0)
    dense_weight: float = Field(0.4, ge=0)
    phrasing_weight: float = Field(0.2, ge=0, le=1)  # share of the dense signal from the nearest article phrasing


class KnowledgeSettings(_Section):
    library: list[str] = Field(default_factory=lambda: ["@bundled"])  # @bundled = knowledge/library
    phrasings: list[str] = Field(default_factory=lambda: ["@bundled"])  # @bundled = knowledge/phrasings
    auto_ingest_bundled: bool = True
    max_chunk_chars: int = Field(600, ge=200, le=4000)
    max_question_chars: int = Field(4000, ge=100)
    answer_cache_size: int = Field(4096, ge=0)  # recent answers kept in memory (0: none); dropped on ingest
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)


class BotSettings(_Section):
    name: str = "安全生产值守助手"
    data_dir: str = "~/.safeduty"  # overridden by --data-dir or SAFEDUTY_DATA_DIR
    timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    admin_contact: str = "区安委办"  # whom to ask when the knowledge base has no answer


class DatabaseSettings(_Section):
    url: str = ""  # empty: SQLite (WAL) in the data directory; e.g. postgresql+psycopg://user@host/db
    url_env: str = ""  # or the name of an environment variable holding the URL (with its password)


class LedgerSettings(_Section):
    deadline_days: dict[str, int] = Field(default_factory=lambda: {"一般": 7, "重大": 30})
    max_reports_per_day: int = Field(10, ge=1)
    draft_expiry_minutes: int = Field(30, ge=1)
    max_description_chars: int = Field(2000, ge=50)
    # who may see a reporter's identity and contact (default: 安委办 admins only)
    identity_visible_to: list[Literal["citizen", "grid", "cadre", "leader", "admin"]] = Field(
        default_factory=lambda: ["admin"]
    )
    max_photo_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_photos: int = Field(9, ge=1)
    query_attempts_per_hour: int = Field(10, ge=1)
    triage_unit: str = "区安委办"  # where unmatched reports go
    # 属地 by place name: {"幸福社区": {"unit": "幸福社区", "grid": "张网格"}} (unit and grid person by name)
    places: dict[str, dict[str, str]] = Field(default_factory=dict)


class HolidayOverride(_Section):
    """A year chinese-calendar does not know yet: its holidays and 调休 workdays, from the State
    Council notice, entered by an admin."""

    name: str
    days: list[str]  # ISO dates off work, e.g. ["2027-10-01", ..., "2027-10-07"]
    workdays: list[str] = Field(default_factory=list)  # 调休 make-up workdays


class SpecialPeriod(_Section):
    name: str  # 两会, 重大活动, 汛期, 森林防火期
    start: str  # ISO date
    end: str


class PushTarget(_Section):
    """A group chat that receives group pushes (安委办工作群, a township's group ...)."""

    name: str
    channel: str  # console | telegram | wechat_mp | wecom | wecom_robot
    chat: str  # chat id on that channel


class ChannelLimits(_Section):
    per_second: float = Field(30, gt=0)  # overall
    per_chat_per_minute: float = Field(20, gt=0)


class SchedulesSettings(_Section):
    enabled: bool = True
    grace_hours: float = Field(6, ge=0)  # a push due while down is still sent within this
    holiday_lead_days: int = Field(3, ge=0)  # 节前安全提醒 this many days before a holiday
    duty_eve_time: str = "18:00"  # personal reminder the evening before a duty day
    duty_morning_time: str = "08:00"  # 今日值班 to the groups on holiday / special-period mornings
    checkin_deadline: str = "09:00"  # 到岗 expected by this time on the duty day
    escalate_to_leader_after_minutes: int = Field(30, ge=0)
    escalate_to_office_after_minutes: int = Field(60, ge=0)
    nudge_days_before: list[int] = Field(default_factory=lambda: [3, 1, 0])  # T-3, T-1, on the day
    nudge_time: str = "09:00"
    overdue_escalate_after_days: int = Field(3, ge=1)  # then the unit leader is told (挂牌督办)
    weekly_digest_cron: str = "0 17 * * fri"  # minute hour day month day_of_week
    monthly_digest_cron: str = "0 9 1 * *"
    office_groups: list[str] = Field(default_factory=list)  # PushTarget names for 安委办 pushes
    duty_groups: list[str] = Field(default_factory=list)  # PushTarget names for duty pushes
    targets: list[PushTarget] = Field(default_factory=list)
    holidays: list[HolidayOverride] = Field(default_factory=list)
    special_periods: list[SpecialPeriod] = Field(default_factory=list)


class OutboxSettings(_Section):
    max_attempts: int = Field(6, ge=1)  # then the row is dead-lettered
    backoff_seconds: float = Field(5, gt=0)  # doubled after each failure
    max_backoff_seconds: float = Field(600, gt=0)
    limits: dict[str, ChannelLimits] = Field(
        default_factory=lambda: {
            "telegram": ChannelLimits(per_second=30, per_chat_per_minute=20),
            "wecom": ChannelLimits(per_second=10, per_chat_per_minute=30),
            "wecom_robot": ChannelLimits(per_second=1, per_chat_per_minute=20),
            "wechat_mp": ChannelLimits(per_second=10, per_chat_per_minute=20),
            "console": ChannelLimits(per_second=100, per_chat_per_minute=600),
        }
    )


# ---------------------------------------------------------------- channels (safeduty serve)
# Secrets are never values here: each *_env field names the environment variable that holds one.


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    per_user_per_minute: int = Field(30, ge=0)  # messages one sender may have answered (0: no limit)
    failures_per_ip_per_minute: int = Field(20, ge=0)  # refused webhook calls before an address gets 429
    answer_threads: int = Field(2, ge=1, le=64)  # threads answering messages (Python work holds the GIL)
    # threads for questions not in the answer cache (retrieval + embedding, ~30-45 ms each), so
    # they never hold up the quick messages queued behind them. Each embeds with one CPU thread:
    # two questions at once on one thread each beat one at a time on two (bench/webhook_load.py:
    # 297 vs 250 msg/s, p99 1.7 vs 4.0 s with a tenth of the questions new), and three beat two on
    # this 2-core machine too (WeChat steady p99 0.35-0.88 s in 4 runs vs 0.75-1.7 s in 5; the
    # embedding releases the GIL, so a third thread fills the cores while the event loop waits).
    retrieval_threads: int = Field(3, ge=1, le=64)
    answer_processes: int = Field(0, ge=0, le=64)  # >0: new questions answered in that many worker processes


class TelegramSettings(_Section):
    enabled: bool = False
    token_env: str = "SAFEDUTY_TELEGRAM_TOKEN"  # bot token from @BotFather
    webhook_url: str = ""  # empty: long polling; else the public https URL of /telegram/webhook
    secret_env: str = "SAFEDUTY_TELEGRAM_SECRET"  # webhook secret_token (needed with webhook_url)
    base_url: str = ""  # empty: the real Bot API; tests point it at a fake server


class WeComSettings(_Section):
    enabled: bool = False
    corp_id: str = ""
    agent_id: int = 0
    token_env: str = "SAFEDUTY_WECOM_TOKEN"  # callback Token
    aes_key_env: str = "SAFEDUTY_WECOM_AES_KEY"  # callback EncodingAESKey
    secret_env: str = "SAFEDUTY_WECOM_SECRET"  # the app's Secret
    api_base: str = ""  # empty: https://qyapi.weixin.qq.com; tests and benchmarks point it at a fake


class WeComRobotSettings(_Section):
    enabled: bool = False
    webhook_key_env: str = "SAFEDUTY_WECOM_ROBOT_KEY"  # the key= of the group robot webhook URL
    api_base: str = ""  # empty: https://qyapi.weixin.qq.com


class WeChatMPSettings(_Section):
    enabled: bool = False
    app_id: str = ""
    token_env: str = "SAFEDUTY_WECHAT_TOKEN"
    aes_key_env: str = "SAFEDUTY_WECHAT_AES_KEY"  # EncodingAESKey (safe mode)
    secret_env: str = "SAFEDUTY_WECHAT_SECRET"  # AppSecret
    api_base: str = ""  # empty: https://api.weixin.qq.com; tests and benchmarks point it at a fake


class WebChatSettings(_Section):
    enabled: bool = True  # the local web chat at http://host:port/


class ChannelsSettings(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    wecom: WeComSettings = Field(default_factory=WeComSettings)
    wecom_robot: WeComRobotSettings = Field(default_factory=WeComRobotSettings)
    wechat_mp: WeChatMPSettings = Field(default_factory=WeChatMPSettings)
    web: WebChatSettings = Field(default_factory=WebChatSettings)


class Config(_Section):
    bot: BotSettings = Field(default_factory=BotSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    schedules: SchedulesSettings = Field(default_factory=SchedulesSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    channels: ChannelsSettings = Field(default_factory=ChannelsSettings)


class ConfigError(Exception):
    """Configuration problems, phrased for the operator (file, line, key)."""


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path in the YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (key_node.value,)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            lines.update(_key_lines(item, prefix + (i,)))
    return lines


def load_config(path: Path | None = None) -> Config:
    path = Path(path) if path else Path(os.environ.get("SAFEDUTY_CONFIG", DEFAULT_CONFIG))
    if not path.exists():
        if path == DEFAULT_CONFIG:
            return Config()
        raise ConfigError(f"配置文件不存在：{path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: 配置文件必须是 UTF-8 编码（{exc}）") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML 格式错误：{getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 顶层必须是键值映射")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(node) if node is not None else {}
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
            key = ".".join(str(p) for p in loc)
            where = f"{path}:{line}" if line else str(path)
            kind = "未知配置项" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {key}: {kind}")
        raise ConfigError("配置文件有误：\n" + "\n".join(problems)) from exc


def resolve_data_dir(config: Config, override: str | None = None) -> Path:
    raw = override or os.environ.get("SAFEDUTY_DATA_DIR") or config.bot.data_dir
    return Path(raw).expanduser().resolve()
