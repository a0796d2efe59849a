"""The ledger's tables (SQLAlchemy 2). Schema changes go through numbered Alembic migrations in
bot/migrations; never create tables from these models outside a migration.

Lifecycle state (hazards.state) and delivery state (outbox.status) are separate on purpose: a
hazard can be closed while the notification about it is still waiting for a platform to accept it.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Unit(Base):
    """行业主管部门 (department), 乡镇/街道 (township), 社区/村 (community), 网格 (grid), 安委办 (office)."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # department | township | community | grid | office
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", use_alter=True, name="fk_unit_leader"))


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    phone: Mapped[str] = mapped_column(String(30), default="")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    roles: Mapped[str] = mapped_column(String(100), default="citizen")  # comma list: citizen,grid,cadre,leader,admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    unit: Mapped[Unit | None] = relationship(foreign_keys=[unit_id])

    def has_role(self, *roles: str) -> bool:
        mine = set(self.roles.split(","))
        return any(r in mine for r in roles)


class ChatIdentity(Base):
    """A platform account (channel + platform user id) bound to a person."""

    __tablename__ = "chat_identities"
    __table_args__ = (UniqueConstraint("channel", "platform_user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    platform_user_id: Mapped[str] = mapped_column(String(100))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    bound_at: Mapped[datetime] = mapped_column(DateTime)


class BindingCode(Base):
    """One-time code an admin issues so a person can bind their chat account."""

    __tablename__ = "binding_codes"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class Hazard(Base):
    __tablename__ = "hazards"
    __table_args__ = (
        Index("ix_hazards_dept_state", "department_id", "state"),
        Index("ix_hazards_terr_state", "territorial_id", "state"),
        Index("ix_hazards_resp_state", "responsible_person_id", "state"),
        Index("ix_hazards_grid_state", "grid_person_id", "state"),  # migration 0003
        Index("ix_hazards_state_deadline", "state", "deadline"),
        Index("ix_hazards_reporter", "reporter_channel", "reporter_user", "reported_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True)  # YH-20261122-0007
    secret_hash: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10), default="一般")  # 一般 | 重大
    place: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20), index=True)  # see bot.storage.workflow.STATES
    source: Mapped[str] = mapped_column(String(20), default="随手拍")  # 随手拍 | 网格巡查 | 检查 | 导入
    reported_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # routing
    department_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))  # 行业主管部门
    territorial_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))  # 属地
    grid_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    # reporter (confidential)
    reporter_channel: Mapped[str] = mapped_column(String(20), default="")
    reporter_user: Mapped[str] = mapped_column(String(100), default="")
    reporter_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    reporter_name: Mapped[str] = mapped_column(String(50), default="")
    reporter_contact: Mapped[str] = mapped_column(String(50), default="")
    anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    # 五落实
    responsible_unit: Mapped[str] = mapped_column(String(100), default="")
    responsible_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    responsible_person: Mapped[str] = mapped_column(String(50), default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    funds: Mapped[str] = mapped_column(String(50), default="")
    deadline: Mapped[date | None] = mapped_column(Date)
    emergency_plan: Mapped[str] = mapped_column(Text, default="")
    supervising_leader_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))  # 挂牌督办
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id"))
    public_note: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class HazardHistory(Base):
    """Every change of a hazard is a row: who, when, from, to, note."""

    __tablename__ = "hazard_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    actor_label: Mapped[str] = mapped_column(String(100), default="")
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)  # shown to the reporter


class Attachment(Base):
    """A photo or document stored in the data directory by content hash."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    hazard_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(20), default="report")  # report | evidence
    exif_lat: Mapped[float | None] = mapped_column(Float)
    exif_lon: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class RoutingRule(Base):
    """(category) -> 行业主管部门, (place keyword) -> 属地 unit and grid member. Editable by admins."""

    __tablename__ = "routing_rules"
    __table_args__ = (UniqueConstraint("kind", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # category | place
    key: Mapped[str] = mapped_column(String(100))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    grid_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))


class Outbox(Base):
    """A push waiting to be delivered; written in the same transaction as the change causing it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "not_before"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    channel: Mapped[str] = mapped_column(String(20), default="")  # empty: resolved from the person's binding
    recipient: Mapped[str] = mapped_column(String(100), default="")  # chat id on that channel
    text: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | sent | dead | missed
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class Conversation(Base):
    """Conversation state lives here, so a draft survives a restart."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "chat", "user"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat: Mapped[str] = mapped_column(String(100))
    user: Mapped[str] = mapped_column(String(100))
    flow: Mapped[str] = mapped_column(String(20))  # report | evidence | ...
    state: Mapped[str] = mapped_column(String(30))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class RateEvent(Base):
    """Timestamps of rate-limited actions (receipt queries, reports) per key."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(150))
    at: Mapped[datetime] = mapped_column(DateTime)


class DutyShift(Base):
    """One person on duty for one shift (值班表 row): 带班领导 (leader) or 值班员 (staff)."""

    __tablename__ = "duty_shifts"
    __table_args__ = (
        UniqueConstraint("day", "person_id", "starts_at"),
        Index("ix_duty_shifts_starts", "starts_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)  # the duty day the shift belongs to
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    role: Mapped[str] = mapped_column(String(10))  # leader | staff
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    phone: Mapped[str] = mapped_column(String(30), default="")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    source: Mapped[str] = mapped_column(String(200), default="")  # roster file it came from
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime)  # 到岗 confirmation


class SupervisionItem(Base):
    """督办事项: a task with an owner and a deadline, nudged like a hazard's 整改时限."""

    __tablename__ = "supervision_items"
    __table_args__ = (Index("ix_supervision_state_deadline", "state", "deadline"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True)  # DB-20261122-0001
    task: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    deadline: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | done
    created_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="")


class GroupChat(Base):
    """A platform group chat bound to a configured group name (安委办工作群, a township's group ...):
    group pushes addressed to the name go there. One chat per name and channel."""

    __tablename__ = "group_chats"
    __table_args__ = (UniqueConstraint("name", "channel"), UniqueConstraint("channel", "chat"))
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat: Mapped[str] = mapped_column(String(200))
    bound_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    bound_at: Mapped[datetime] = mapped_column(DateTime)


class CallbackReceipt(Base):
    """Platform callbacks already taken (WeChat/WeCom retry the same MsgId up to 3 times): the
    primary key makes the first worker's insert win when several processes share the database."""

    __tablename__ = "callback_receipts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)
