"""Crash the intake conversation: kill -9 a `safeduty chat` process at every step, restart, go on.

Each report is a scripted conversation (/report, description, place, 跳过, category, contact, 确认)
sent one message at a time to a real console process, waiting for each reply. At planned and at
random steps the process is killed with SIGKILL a few milliseconds after a message was written
(before or after its transaction committed), or while idle; a new process is started on the same
data directory and — like a user who got no answer — the same message is sent again. Some drafts
are abandoned after a kill; their expiry is simulated by moving `expires_at` into the past, and the
next message must report the draft as expired and start cleanly.

At the end SQL checks that every receipt printed exists (lost=0), no report was filed twice
(duplicates=0), every filed report holds exactly what its script said (no step shifted by a
resend), the last secret printed for each code verifies, and no half-finished draft is left.

    python bench/intake_crash.py [--reports 21] [--seed 7] [--data-dir D]
"""
from __future__ import annotations

import argparse
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ledger.receipts import verify_secret  # noqa: E402

RECEIPT = re.compile(r"回执码：(YH-\d{8}-\d{4})\n查询密码：(\w{6})")
STEP_NAMES = ["start", "what", "where", "photos", "category", "contact", "confirm"]
DELAYS = (0.0, 0.002, 0.01, 0.03, 0.08, 0.2)  # seconds between writing a message and SIGKILL
CONFIRM_DELAYS = (0.01, 0.05, 0.08, 0.12, 0.2, 0.3)  # filing hashes the secret (~60 ms): straddle the commit
SCENES = [
    ("楼道里电动车在充电，还拉了飞线", "幸福社区{n}栋楼道", "电动自行车"),
    ("饭店后厨有很重的煤气味", "人民路{n}号", "燃气"),
    ("消防通道被货物堵死了", "光明商场{n}号门", "消防"),
    ("仓库楼上住了工人", "工业园{n}号厂房", "三合一/多合一"),
]


class Chat:
    """One `safeduty chat` process; send() writes a line and waits for the reply ending in ---."""

    def __init__(self, data_dir: Path, config: Path, user: str, chat: str) -> None:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "chat", "--data-dir", str(data_dir), "--config", str(config),
             "--user", user, "--chat", chat],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            encoding="utf-8", cwd=ROOT, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def write(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def read_reply(self, timeout: float = 120.0) -> str:
        out, deadline = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("chat process ended without a reply")
            if line.rstrip("\n") == "---":
                return "".join(out).strip()
            out.append(line)

    def send(self, text: str) -> str:
        self.write(text)
        return self.read_reply()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def script_for(i: int) -> tuple[list[str], dict]:
    desc, place, category = SCENES[i % len(SCENES)]
    desc, place = f"{desc}（#R{i:03d}）", place.format(n=100 + i)
    contact = "匿名" if i % 2 else f"测试{i} 1390000{i:04d}"
    return ["/report", desc, place, "跳过", category, contact, "确认"], {
        "description": desc, "place": place, "category": category,
    }


def age_draft(db: Path, user: str) -> None:
    """Simulate the 30 minutes an abandoned draft waits before it expires."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("UPDATE conversations SET expires_at = '2000-01-01 00:00:00.000000' WHERE user = ?", (user,))


def run(args) -> int:
    rng = random.Random(args.seed)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="safeduty-crash-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "bench-config.yaml"
    config.write_text("knowledge:\n  embedding:\n    provider: none\nledger:\n  max_reports_per_day: 1000\n",
                      encoding="utf-8")
    db = data_dir / "safeduty.db"
    stats: Counter = Counter()
    kills_by_step: Counter = Counter()
    receipts: dict[int, tuple[str, str]] = {}
    expected: dict[int, dict] = {}
    t0 = time.monotonic()
    for i in range(args.reports):
        user = f"crash-u{i}"
        messages, expected[i] = script_for(i)
        chat = Chat(data_dir, config, user, "dm")
        planned = i % len(messages)  # every step gets its planned kills
        abandon = i % 5 == 4  # these drafts are abandoned after the kill and must expire
        step = 0
        while step < len(messages):
            text = messages[step]
            if step == planned or rng.random() < args.kill_prob:
                stats["kills"] += 1
                kills_by_step[STEP_NAMES[step]] += 1
                if rng.random() < 0.2:
                    chat.kill()  # idle: between two messages
                else:
                    chat.write(text)
                    delays = CONFIRM_DELAYS if text == "确认" else DELAYS
                    late = text == "确认" and step == planned and i % 2  # surely committed, reply unread
                    time.sleep(0.6 if late else delays[rng.randrange(len(delays))])
                    chat.kill()
                chat = Chat(data_dir, config, user, "dm")
                if abandon and step == planned and step < len(messages) - 1:
                    age_draft(db, user)
                    reply = chat.send("/report")
                    if step == 0 and "已作废" not in reply:  # killed before the first commit
                        stats["nothing_to_expire"] += 1
                    elif "已作废" in reply:
                        stats["expired_cleanly"] += 1
                    else:
                        stats["expiry_not_reported"] += 1
                    with sqlite3.connect(db) as conn:
                        row = conn.execute("SELECT state, data FROM conversations WHERE user = ?", (user,)).fetchone()
                    if not row or row[0] != "what" or "description" in row[1]:
                        stats["unclean_restart"] += 1
                    abandon, step = False, 1  # the new draft is at WHAT: continue from there
                    continue
            reply = chat.send(text)
            if "上一条消息已经收到" in reply or "接着来" in reply:
                stats["resumed_after_commit"] += 1
            if "此前已提交成功" in reply:
                stats["receipt_reprinted"] += 1
            if "出错" in reply:
                stats["errors"] += 1
            m = RECEIPT.search(reply)
            if m:
                receipts[i] = (m.group(1), m.group(2))
            step += 1
        chat.close()
        if i not in receipts:
            stats["no_receipt"] += 1
    elapsed = time.monotonic() - t0

    with sqlite3.connect(db) as conn:
        hazards = conn.execute("SELECT code, description, place, category, secret_hash FROM hazards").fetchall()
        leftovers = conn.execute("SELECT state, COUNT(*) FROM conversations GROUP BY state").fetchall()
        orphan_photos = conn.execute("SELECT COUNT(*) FROM attachments WHERE hazard_id IS NULL").fetchone()[0]
    by_code = {h[0]: h for h in hazards}
    lost = sum(1 for code, _ in receipts.values() if code not in by_code)
    tags = Counter(re.search(r"#R(\d{3})", h[1]).group(1) for h in hazards if "#R" in h[1])
    duplicates = sum(n - 1 for n in tags.values() if n > 1)
    mismatched = 0
    for i, want in expected.items():
        code = receipts.get(i, ("", ""))[0]
        h = by_code.get(code)
        if h and (h[1], h[2], h[3]) != (want["description"], want["place"], want["category"]):
            mismatched += 1
    bad_secrets = sum(1 for code, secret in receipts.values()
                      if code in by_code and not verify_secret(secret, by_code[code][4]))
    half_drafts = sum(n for state, n in leftovers if state != "done")

    print(f"lost={lost} duplicates={duplicates}")
    print(f"reports={args.reports} receipts={len(receipts)} hazards={len(hazards)} no_receipt={stats['no_receipt']}")
    print(f"kills={stats['kills']} by step: " + ", ".join(f"{s}={kills_by_step[s]}" for s in STEP_NAMES))
    print(f"resumed_after_commit={stats['resumed_after_commit']} receipt_reprinted={stats['receipt_reprinted']} "
          f"expired_cleanly={stats['expired_cleanly']} nothing_to_expire={stats['nothing_to_expire']} "
          f"expiry_not_reported={stats['expiry_not_reported']} unclean_restart={stats['unclean_restart']}")
    print(f"mismatched={mismatched} bad_secrets={bad_secrets} half_finished_drafts={half_drafts} "
          f"unlinked_photos={orphan_photos} errors={stats['errors']}")
    print(f"elapsed={elapsed:.1f}s data_dir={data_dir}")
    failed = lost or duplicates or mismatched or bad_secrets or half_drafts or stats["no_receipt"] \
        or stats["expiry_not_reported"] or stats["unclean_restart"] or stats["errors"]
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=21, help="scripted reports (7 steps each)")
    parser.add_argument("--kill-prob", type=float, default=0.15, help="extra random kill chance per step")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", default="")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
