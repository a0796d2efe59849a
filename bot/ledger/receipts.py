"""Receipt codes and query secrets for hazard reports.

A report gets a code (YH-20261122-0007: local date + per-day sequence) and a short secret the
reporter uses with `/query 回执码 密码`. Only a salted scrypt hash of the secret is stored.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.storage.models import Hazard

CODE_PREFIX = "YH"
CODE_RE = re.compile(r"^YH-(\d{8})-(\d{4,})$")
SECRET_LENGTH = 6
# digits and capitals without the look-alikes 0/O, 1/I/L
SECRET_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def code_prefix(day: date) -> str:
    return f"{CODE_PREFIX}-{day:%Y%m%d}-"


def next_code(session: Session, day: date) -> str:
    """The next free code of the day. Two writers may race to the same code: the unique constraint
    on hazards.code makes the loser fail, and the caller retries."""
    prefix = code_prefix(day)
    last = session.scalar(select(func.max(Hazard.code)).where(Hazard.code.like(prefix + "%")))
    seq = int(last[len(prefix):]) + 1 if last else 1
    return f"{prefix}{seq:04d}"


def normalize_code(text: str) -> str:
    """'yh-20261122-0007' / 'YH202611220007' -> 'YH-20261122-0007' ('' when it is not a code)."""
    raw = re.sub(r"[\s_－—]", "-", text.strip().upper())
    m = re.fullmatch(r"YH-?(\d{8})-?(\d{4,})", raw)
    return f"YH-{m.group(1)}-{m.group(2)}" if m else ""


def new_secret() -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def hash_secret(secret: str) -> str:
    """'scrypt$n$r$p$salt$hash' (hex), at most 128 characters."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(_normalize_secret(secret), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against hash_secret()'s output; False on any malformed input."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            _normalize_secret(secret), salt=bytes.fromhex(salt_hex), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def _normalize_secret(secret: str) -> bytes:
    return secret.strip().upper().encode("utf-8")[:64]
