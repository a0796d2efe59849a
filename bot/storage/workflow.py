"""The hazard lifecycle as data: states with open/closed types, and the transitions allowed from
each, with the roles that may take them. Code asks this table; it never compares state strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class StateType(str, Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class State:
    key: str
    label: str  # what users see
    type: StateType


STATES: dict[str, State] = {
    s.key: s
    for s in (
        State("reported", "待核实", StateType.OPEN),
        State("accepted", "已受理", StateType.OPEN),
        State("rectifying", "整改中", StateType.OPEN),
        State("awaiting_acceptance", "待验收", StateType.OPEN),
        State("closed", "已销号", StateType.CLOSED),
        State("rejected", "不予受理", StateType.CLOSED),
        State("duplicate", "重复", StateType.CLOSED),
    )
}
OPEN_STATES = tuple(k for k, s in STATES.items() if s.type is StateType.OPEN)
INITIAL_STATE = "reported"


@dataclass(frozen=True)
class Transition:
    action: str  # command word, e.g. accept
    label: str  # 受理
    source: tuple[str, ...]
    target: str
    roles: tuple[str, ...]  # any of these roles may act (subject to unit checks in the handler)
    needs_note: bool = False  # a reason is required (rejections, duplicates, reopen)
    tells_reporter: bool = False  # the reporter is notified with the public part of the note


TRANSITIONS: tuple[Transition, ...] = (
    Transition("accept", "受理", ("reported",), "accepted", ("cadre", "leader", "admin"), tells_reporter=True),
    Transition("start", "开始整改", ("accepted",), "rectifying", ("cadre", "leader", "admin", "grid")),
    Transition("submit", "提交验收", ("accepted", "rectifying"), "awaiting_acceptance", ("cadre", "leader", "admin", "grid"),
               tells_reporter=True),
    Transition("close", "销号", ("awaiting_acceptance",), "closed", ("leader", "admin"), tells_reporter=True),
    Transition("return", "验收不通过", ("awaiting_acceptance",), "rectifying", ("leader", "admin"), needs_note=True),
    Transition("reject", "不予受理", ("reported",), "rejected", ("cadre", "leader", "admin"), needs_note=True,
               tells_reporter=True),
    Transition("duplicate", "标记重复", ("reported", "accepted"), "duplicate", ("cadre", "leader", "admin"),
               needs_note=True),
    Transition("reopen", "重新打开", ("closed", "rejected", "duplicate"), "rectifying", ("leader", "admin"),
               needs_note=True, tells_reporter=True),
)
BY_ACTION = {t.action: t for t in TRANSITIONS}


def allowed_from(state: str) -> list[Transition]:
    return [t for t in TRANSITIONS if state in t.source]


def is_open(state: str) -> bool:
    return STATES[state].type is StateType.OPEN


def label(state: str) -> str:
    return STATES[state].label
