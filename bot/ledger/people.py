"""People, units and chat identities: who is writing, what they may do, and the binding flow.

An unknown chat account is a citizen with no Person row. Staff (grid members, cadres, leaders,
安委办 admins) are added by an admin, who issues a one-time binding code; the person sends
`/bind CODE` from their chat account and is recognised from then on.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.ledger import ratelimit
from bot.storage.models import BindingCode, ChatIdentity, Person, Unit

ROLES = ("citizen", "grid", "cadre", "leader", "admin")
ROLE_LABELS = {"citizen": "群众", "grid": "网格员", "cadre": "干部", "leader": "领导", "admin": "安委办管理员"}
STAFF_ROLES = ("grid", "cadre", "leader", "admin")
UNIT_KINDS = {"department": "行业主管部门", "township": "乡镇/街道", "community": "社区/村", "grid": "网格",
              "office": "安委办"}
# Chinese spellings accepted wherever a role or unit kind is typed
ROLE_ALIASES = {"群众": "citizen", "网格员": "grid", "网格": "grid", "干部": "cadre", "领导": "leader",
                "管理员": "admin", "安委办": "admin"}
KIND_ALIASES = {v: k for k, v in UNIT_KINDS.items()} | {"部门": "department", "乡镇": "township", "街道": "township",
                                                         "社区": "community", "村": "community"}

BINDING_VALID = timedelta(hours=24)
BIND_ATTEMPTS_PER_HOUR = 5
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_CODE_LENGTH = 8
BIND_FAILED = "绑定码无效或已过期，请核对后重试，或向安委办重新索取。"
BIND_TOO_MANY = "尝试次数过多，请一小时后再试。"


class PeopleError(ValueError):
    """A problem phrased for the user (Chinese)."""


class BindingError(PeopleError):
    pass


# ---------------------------------------------------------------- identity


def person_for(session: Session, channel: str, platform_user_id: str) -> Person | None:
    """The active person bound to this chat account, or None (a citizen)."""
    return session.scalar(
        select(Person)
        .join(ChatIdentity, ChatIdentity.person_id == Person.id)
        .where(ChatIdentity.channel == channel, ChatIdentity.platform_user_id == platform_user_id,
               Person.active.is_(True))
    )


def role_set(person: Person | None) -> set[str]:
    if person is None:
        return {"citizen"}
    return {r for r in (person.roles or "").split(",") if r} or {"citizen"}


def is_staff(person: Person | None) -> bool:
    return bool(role_set(person) & set(STAFF_ROLES))


def roles_label(person: Person | None) -> str:
    return "、".join(ROLE_LABELS.get(r, r) for r in sorted(role_set(person), key=ROLES.index))


def normalise_roles(raw: str) -> str:
    """'cadre, 领导' -> 'cadre,leader'; raises PeopleError naming an unknown role."""
    out: list[str] = []
    for part in raw.replace("，", ",").replace("、", ",").split(","):
        part = part.strip()
        if not part:
            continue
        role = ROLE_ALIASES.get(part, part.lower())
        if role not in ROLES:
            raise PeopleError(f"未知角色「{part}」，可选：{', '.join(ROLES)}（或 网格员/干部/领导/管理员）")
        if role not in out:
            out.append(role)
    return ",".join(out) or "citizen"


def actor_label(person: Person | None) -> str:
    if person is None:
        return "系统"
    return f"{person.name}（{person.unit.name}）" if person.unit else person.name


# ---------------------------------------------------------------- binding


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))


def _clean_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def issue_binding_code(session: Session, person: Person, issued_by: Person | None, now: datetime) -> str:
    """A one-time code valid for 24 hours; earlier unused codes of the same person stop working."""
    session.execute(
        update(BindingCode)
        .where(BindingCode.person_id == person.id, BindingCode.used_at.is_(None), BindingCode.expires_at > now)
        .values(expires_at=now)
    )
    while True:
        code = _new_code()
        if session.get(BindingCode, code) is None:
            break
    session.add(BindingCode(code=code, person_id=person.id, issued_by=issued_by.id if issued_by else None,
                            expires_at=now + BINDING_VALID))
    session.flush()
    return code


def bind(session: Session, channel: str, platform_user_id: str, code: str, now: datetime) -> Person:
    """Bind this chat account to the person the code was issued for.

    Raises BindingError with the same message for unknown, expired and used codes. The attempt is
    recorded in rate_events: commit the session even when this raises.
    """
    if ratelimit.hit(session, f"bind:{channel}:{platform_user_id}", BIND_ATTEMPTS_PER_HOUR, now):
        raise BindingError(BIND_TOO_MANY)
    row = session.scalar(select(BindingCode).where(BindingCode.code == _clean_code(code)).with_for_update())
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise BindingError(BIND_FAILED)
    person = session.get(Person, row.person_id)
    if person is None or not person.active:
        raise BindingError(BIND_FAILED)
    row.used_at = now
    identity = session.scalar(
        select(ChatIdentity).where(ChatIdentity.channel == channel, ChatIdentity.platform_user_id == platform_user_id)
    )
    if identity is None:
        session.add(ChatIdentity(channel=channel, platform_user_id=platform_user_id, person_id=person.id, bound_at=now))
    else:  # the account is re-bound to whoever the newest code names
        identity.person_id, identity.bound_at = person.id, now
    session.flush()
    return person


# ---------------------------------------------------------------- units and people


def unit_by_name(session: Session, name: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.name == name.strip()))


def require_unit(session: Session, name: str) -> Unit:
    unit = unit_by_name(session, name)
    if unit is None:
        raise PeopleError(f"没有名为「{name.strip()}」的单位。")
    return unit


def add_unit(session: Session, name: str, kind: str, parent: Unit | str | None = None) -> Unit:
    name = name.strip()
    kind = KIND_ALIASES.get(kind.strip(), kind.strip())
    if not name:
        raise PeopleError("单位名称不能为空。")
    if kind not in UNIT_KINDS:
        raise PeopleError(f"未知单位类型「{kind}」，可选：{', '.join(UNIT_KINDS)}")
    if unit_by_name(session, name) is not None:
        raise PeopleError(f"单位「{name}」已存在。")
    if isinstance(parent, str):
        parent = require_unit(session, parent) if parent.strip() else None
    unit = Unit(name=name, kind=kind, parent_id=parent.id if parent else None)
    session.add(unit)
    session.flush()
    return unit


def add_person(session: Session, name: str, phone: str = "", unit: Unit | str | None = None,
               roles: str = "citizen", leads_unit: bool = False) -> Person:
    """Add a person; with leads_unit (or the leader role and a unit without a leader) they become
    the unit's leader, who is the default 挂牌督办 supervisor of its major hazards."""
    name = name.strip()
    if not name:
        raise PeopleError("姓名不能为空。")
    if isinstance(unit, str):
        unit = require_unit(session, unit) if unit.strip() else None
    person = Person(name=name, phone=phone.strip(), unit_id=unit.id if unit else None,
                    roles=normalise_roles(roles), active=True)
    session.add(person)
    session.flush()
    if unit is not None and (leads_unit or ("leader" in role_set(person) and unit.leader_id is None)):
        unit.leader_id = person.id
        session.flush()
    return person


def people_named(session: Session, name: str) -> list[Person]:
    return list(session.scalars(select(Person).where(Person.name == name.strip(), Person.active.is_(True))
                                .order_by(Person.id)))


def find_person(session: Session, ref: str) -> Person:
    """A person by name (or '#id' / a phone number when names clash); PeopleError when none or several."""
    ref = ref.strip()
    if ref.startswith("#") and ref[1:].isdigit():
        person = session.get(Person, int(ref[1:]))
        if person is None:
            raise PeopleError(f"没有编号为 {ref} 的人员。")
        return person
    matches = people_named(session, ref)
    if not matches and ref.isdigit():
        matches = list(session.scalars(select(Person).where(Person.phone == ref, Person.active.is_(True))))
    if not matches:
        raise PeopleError(f"没有名为「{ref}」的人员。")
    if len(matches) > 1:
        listing = "；".join(f"#{p.id} {p.name}（{p.unit.name if p.unit else '无单位'}）" for p in matches)
        raise PeopleError(f"有 {len(matches)} 位「{ref}」：{listing}。请用 #编号 指定。")
    return matches[0]


def unit_tree(session: Session) -> dict[int | None, list[int]]:
    children: dict[int | None, list[int]] = {}
    for uid, parent in session.execute(select(Unit.id, Unit.parent_id)):
        children.setdefault(parent, []).append(uid)
    return children


def unit_and_descendants(session: Session, unit_id: int) -> set[int]:
    """The unit and every unit below it (a township and its communities and grids)."""
    children = unit_tree(session)
    found, stack = set(), [unit_id]
    while stack:
        uid = stack.pop()
        if uid in found:
            continue
        found.add(uid)
        stack.extend(children.get(uid, []))
    return found
