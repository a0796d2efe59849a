"""Crash the outbox sender: kill -9 it at random points, restart it, until the outbox is drained.

A fake platform (stdlib http.server on 127.0.0.1, in this process) records every message it
delivers. It deduplicates only by idempotency key (a key it has seen returns the original
message id, like WeCom's enable_duplicate_check), and a bounded number of times it answers 429
(Retry-After), 500 before accepting, or 500 *after* accepting (the response is lost: the sender
must retry with the same key). 10,000 pushes are queued in a temporary SQLite ledger; the sender
(bot.delivery.Sender + bot.channels.http_stub) runs in a separate process, is killed with SIGKILL
at random moments several times and restarted. At the end:

    duplicates=N   deliveries to a user beyond the first for one key (must be 0)
    lost=N         keys never delivered (must be 0)
    plus the throughput against the configured per-second limit.

    python bench/outbox_crash.py [--pushes 10000] [--kills 5] [--per-second 200] [--seed 7]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHANNEL = "stub"
LEASE_SECONDS = 1.5


class Platform:
    def __init__(self, seed: int, max_faults: int = 150) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.by_key: dict[str, str] = {}  # key -> first message id
        self.deliveries: Counter[str] = Counter()  # key -> messages shown to the user
        self.deduplicated = 0
        self.faults: Counter[str] = Counter()
        self.max_faults = max_faults
        self.requests = 0

    def handle(self, body: dict) -> tuple[int, dict, dict]:
        key = body.get("key") or ""
        with self.lock:
            self.requests += 1
            fault = None
            if self.rng.random() < 0.03:
                fault = self.rng.choice(["429", "500-before", "500-after"])
                if self.faults[fault] >= self.max_faults:
                    fault = None
            if fault == "429":
                self.faults[fault] += 1
                return 429, {"Retry-After": "1"}, {"error": "too many requests"}
            if fault == "500-before":
                self.faults[fault] += 1
                return 500, {}, {"error": "internal"}
            if key and key in self.by_key:
                self.deduplicated += 1
                return 200, {}, {"message_id": self.by_key[key], "duplicate": True}
            message_id = f"m{self.requests}"
            if key:
                self.by_key[key] = message_id
            self.deliveries[key or f"(no key) {message_id}"] += 1
            if fault == "500-after":  # accepted, but the sender never learns it
                self.faults[fault] += 1
                return 500, {}, {"error": "gateway timeout after accept"}
            return 200, {}, {"message_id": message_id}


def serve(platform: Platform) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            status, headers, payload = platform.handle(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a killed sender resets its connections: expected here

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def settings(per_second: float):
    from bot.config import ChannelLimits, OutboxSettings

    return OutboxSettings(max_attempts=12, backoff_seconds=0.2, max_backoff_seconds=2,
                          limits={CHANNEL: ChannelLimits(per_second=per_second, per_chat_per_minute=600)})


def worker(db_path: str, url: str, per_second: float) -> None:
    """The sender process: drain until nothing is pending or sending any more."""
    from sqlalchemy import func, select

    from bot.channels.http_stub import HttpStubChannel
    from bot.delivery import Sender
    from bot.storage.db import make_engine, session_factory
    from bot.storage.models import Outbox

    logging.basicConfig(level=logging.ERROR)  # retries are expected here; keep the output readable
    db = session_factory(make_engine(f"sqlite:///{db_path}"))

    async def main() -> None:
        channel = HttpStubChannel(url, CHANNEL)
        sender = Sender(db, {CHANNEL: channel}, settings(per_second), datetime.now, lease_seconds=LEASE_SECONDS)
        while True:
            result = await sender.drain_once(limit=max(1, int(per_second)))
            if result.limited:
                await asyncio.sleep(sender.limiter.wait_hint([CHANNEL]))
            elif not result.worked:
                with db() as s:
                    left = s.scalar(select(func.count()).select_from(Outbox)
                                    .where(Outbox.status.in_(["pending", "sending"])))
                if not left:
                    break
                await asyncio.sleep(0.05)
        await channel.aclose()

    asyncio.run(main())


def queue_pushes(db_path: Path, n: int) -> None:
    from sqlalchemy import insert

    from bot.storage.db import make_engine, upgrade
    from bot.storage.models import Outbox

    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    now = datetime.now()
    with engine.begin() as conn:
        conn.execute(insert(Outbox), [
            {"idempotency_key": f"bench:{i}", "channel": CHANNEL, "recipient": f"chat{i % 2000}",
             "text": f"值班提醒 {i}", "not_before": now, "created_at": now, "attempts": 0,
             "status": "pending", "last_error": ""} for i in range(n)])
    engine.dispose()


def statuses(db_path: Path) -> Counter:
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        return Counter(dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--per-second", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", nargs=2, metavar=("DB", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.per_second)
        return 0

    rng = random.Random(args.seed)
    platform = Platform(args.seed)
    server = serve(platform)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    tmp = Path(tempfile.mkdtemp(prefix="outbox_crash_"))
    db_path = tmp / "ledger.db"
    queue_pushes(db_path, args.pushes)
    expected = args.pushes / args.per_second
    kill_at = sorted(rng.uniform(0.3, expected * 0.9) for _ in range(args.kills))
    print(f"queued {args.pushes} pushes; sender limit {args.per_second:g}/s; "
          f"kill -9 at {', '.join(f'{t:.1f}s' for t in kill_at)}", flush=True)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(db_path), url,
           "--per-second", str(args.per_second)]
    start = time.monotonic()
    kills = 0
    while True:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        while kill_at and proc.poll() is None:
            wait = kill_at[0] - (time.monotonic() - start)
            try:
                proc.wait(timeout=max(0.0, wait))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                kill_at.pop(0)
                print(f"  kill -9 #{kills} at {time.monotonic() - start:.1f}s: {dict(statuses(db_path))}",
                      flush=True)
        if proc.poll() is None:
            proc.wait(timeout=600)
        if proc.returncode == 0 and not kill_at:
            break
        if proc.returncode not in (0, -signal.SIGKILL):
            print(f"sender exited with {proc.returncode}", flush=True)
            return 1
    elapsed = time.monotonic() - start
    server.shutdown()

    keys = {f"bench:{i}" for i in range(args.pushes)}
    duplicates = sum(n - 1 for n in platform.deliveries.values() if n > 1)
    lost = len(keys - set(platform.deliveries))
    final = statuses(db_path)
    delivered = len(keys & set(platform.deliveries))
    rate = delivered / elapsed
    print(f"outbox rows: {dict(final)}; platform requests={platform.requests} "
          f"deduplicated_by_key={platform.deduplicated} faults={dict(platform.faults)} kills={kills}")
    print(f"duplicates={duplicates}")
    print(f"lost={lost}")
    print(f"throughput={rate:.1f} msg/s against per_second={args.per_second:g} "
          f"(ratio {rate / args.per_second:.2f}; {delivered} messages in {elapsed:.1f}s wall time, "
          f"including {kills} kills and restarts with a {LEASE_SECONDS}s claim lease)")
    return 0 if duplicates == 0 and lost == 0 and final.get("sent") == args.pushes else 1


if __name__ == "__main__":
    sys.exit(main())
