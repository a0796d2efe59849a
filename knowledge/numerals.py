"""Chinese numerals as used in article numbers (第一百一十九条) and their inverse."""
from __future__ import annotations

import re

DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000}
FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")


def cn_to_int(text: str) -> int | None:
    """'二十一' -> 21, '一百零三' -> 103, '十' -> 10; digits are accepted too; None if not a number."""
    text = text.strip().translate(FULLWIDTH)
    if text.isdigit():
        return int(text)
    if not text or any(ch not in DIGITS and ch not in UNITS for ch in text):
        return None
    total, digit = 0, None
    for ch in text:
        if ch in DIGITS:
            digit = DIGITS[ch]
        else:
            total += (1 if digit is None else digit) * UNITS[ch]
            digit = None
    return total + (digit or 0)


def int_to_cn(n: int) -> str:
    """21 -> '二十一', 103 -> '一百零三', 10 -> '十' (the form used in Chinese statute numbering)."""
    if n <= 0:
        raise ValueError(n)
    names = "零一二三四五六七八九"
    if n < 10:
        return names[n]
    if n < 20:
        return "十" + (names[n - 10] if n > 10 else "")
    out, started, zero = "", False, False
    for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // unit_value % 10
        if d:
            if zero and started:
                out += "零"
            out += names[d] + unit
            started, zero = True, False
        elif started:
            zero = True
    return out


ARTICLE_REF_RE = re.compile(r"第\s*([零〇一二三四五六七八九十百千两0-9０-９]+)\s*条")
# "消防法63条": digits and 条 without 第 — only trusted when a law is named right before it.
BARE_ARTICLE_RE = re.compile(r"(?<![0-9０-９])([0-9０-９]{1,3})\s*条")


def article_label(n: int) -> str:
    return f"第{int_to_cn(n)}条"
