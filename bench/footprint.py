"""Cold ingest time of the bundled library and resident memory of `safeduty chat`.

Cold ingest is measured twice in one run — with the shipped vectors of the bundled library
(knowledge/vectors/) and with the model embedding every chunk, the baseline a user's own documents
get — and the ratio printed. Memory is the peak RSS of a real `safeduty chat` process answering a
scripted conversation (read from the kernel after it exits).

    python bench/footprint.py [--skip-uncached]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "安全生产法第二十一条讲什么",
    "厂里出了事故多久要报到县里",
    "九小场所是哪九小",
    "楼道里给电动车充电归谁管",
    "企业主要负责人不履行安全生产管理职责会受到什么处罚",
]


def cold_ingest(use_cache: bool) -> tuple[float, int]:
    from bot.app import build_knowledge, library_paths
    from bot.config import Config

    config = Config()
    with tempfile.TemporaryDirectory(prefix="safeduty-ingest-") as tmp:
        t0 = time.perf_counter()
        kb = build_knowledge(config, Path(tmp))
        if not use_cache:
            kb.index.vector_cache = None
        kb.ingest_paths(library_paths(config))
        return time.perf_counter() - t0, len(kb.index.chunks)


def chat_peak_rss_mb(data_dir: Path) -> tuple[float, float]:
    script = "\n".join(QUESTIONS) + "\n"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat", "--data-dir", str(data_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    proc.stdin.write(script)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"safeduty chat exited with {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-uncached", action="store_true", help="skip the slow uncached ingest")
    args = parser.parse_args()
    # The chat runs first: a child's peak RSS counts the parent's pages until it execs, so measuring
    # after the ingests (which load the model and the index into this process) inflated it (581 MB
    # against 343 MB measured alone, session 5).
    with tempfile.TemporaryDirectory(prefix="safeduty-chat-") as tmp:
        rss_first, first_s = chat_peak_rss_mb(Path(tmp))  # first start: ingests, then answers
        rss_again, again_s = chat_peak_rss_mb(Path(tmp))
    print(f"chat_first_start_s={first_s:.1f}  peak_rss_mb={rss_first:.0f}")
    print(f"chat_restart_s={again_s:.1f}  peak_rss_mb={rss_again:.0f}  ({len(QUESTIONS)} questions answered)")
    cached_s, chunks = cold_ingest(use_cache=True)
    print(f"cold_ingest_cached_s={cached_s:.1f}  ({chunks} chunks, vectors from knowledge/vectors/)")
    if not args.skip_uncached:
        uncached_s, _ = cold_ingest(use_cache=False)
        print(f"cold_ingest_uncached_s={uncached_s:.1f}  (e5-small embeds every chunk)")
        print(f"ratio uncached/cached = {uncached_s / cached_s:.1f}x")


if __name__ == "__main__":
    main()
