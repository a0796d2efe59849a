"""Retrieval and answering benchmark on the development question set.

Prints, for the project and — in the same run, on the same questions — for the naive baseline that
popular knowledge-base QA systems use by default (recursive character splitting 750/150 with Chinese
separators + jieba BM25, top-k): hit@1/3/5 and MRR@10 per question kind and persona, refusal accuracy
on unanswerable questions and false refusals on answerable ones, mean returned passage length, and
p50/p95 question->answer latency. Scoring rule: shared/eval/README.md (whitespace-insensitive
substring match of a gold snippet inside a returned passage).

    python bench/retrieval.py [--questions FILE] [--embedding e5-small|use-multilingual|none] [--no-baseline] [--ranker]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_QUESTIONS = ROOT.parent / "shared" / "eval" / "dev_questions.jsonl"
_WS = re.compile(r"\s+")


def norm(text: str) -> str:
    return _WS.sub("", text)


def first_hit_rank(passages: list[str], gold: list[dict]) -> int | None:
    subs = [norm(g["substring"]) for g in gold]
    for rank, passage in enumerate(passages, start=1):
        p = norm(passage)
        if any(s in p for s in subs):
            return rank
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def summarise(name: str, questions: list[dict], ranks: dict, refused: dict, lengths: list[int], latencies: list[float]):
    print(f"\n== {name} ==")
    groups: dict[str, list[dict]] = defaultdict(list)
    for q in questions:
        if q["kind"] != "unanswerable":
            groups["all answerable"].append(q)
            groups[f"kind={q['kind']}"].append(q)
            groups[f"persona={q['persona']}"].append(q)
    print(f"{'group':<24}{'n':>5}{'hit@1':>8}{'hit@3':>8}{'hit@5':>8}{'MRR@10':>8}")
    for label, qs in groups.items():
        rs = [ranks[q["id"]] for q in qs]
        hit = lambda k: sum(1 for r in rs if r and r <= k) / len(rs)  # noqa: E731
        mrr = sum(1 / r for r in rs if r and r <= 10) / len(rs)
        print(f"{label:<24}{len(qs):>5}{hit(1):>8.3f}{hit(3):>8.3f}{hit(5):>8.3f}{mrr:>8.3f}")
    unans = [q for q in questions if q["kind"] == "unanswerable"]
    answerable = [q for q in questions if q["kind"] != "unanswerable"]
    if refused:
        if unans:
            ok = sum(1 for q in unans if refused[q["id"]])
            print(f"refusal accuracy (unanswerable): {ok}/{len(unans)} = {ok / len(unans):.3f}")
        wrong = sum(1 for q in answerable if refused[q["id"]])
        print(f"false refusals (answerable):     {wrong}/{len(answerable)} = {wrong / max(len(answerable), 1):.3f}")
    else:
        print("refusal: this system never refuses (always returns top-k passages)")
    print(f"mean returned passage length (top-5): {statistics.mean(lengths):.0f} chars")
    if latencies:
        print(f"latency question->answer: p50 {percentile(latencies, .5):.1f} ms  p95 {percentile(latencies, .95):.1f} ms")


def run_project(questions: list[dict], embedding: str, data_dir: Path | None, ranker: bool = False,
                threads: int | None = None) -> dict:
    from bot.config import Config
    from bot.app import build_knowledge, ensure_library

    config = Config()
    config.knowledge.embedding.provider = embedding  # type: ignore[assignment]
    if threads:
        config.knowledge.embedding.threads = threads
    tmp = data_dir or Path(tempfile.mkdtemp(prefix="safeduty-bench-"))
    t0 = time.perf_counter()
    kb = build_knowledge(config, tmp)
    kb.retrieval_settings = dataclasses.replace(kb.retrieval_settings, learned_ranker=ranker)
    built = kb.is_empty()
    ensure_library(config, kb, tmp)
    ingest_s = time.perf_counter() - t0
    print(f"project index: {len(kb.index.chunks)} chunks, embedding={embedding} ({config.knowledge.embedding.threads} thread(s)), learned ranker {'on' if ranker else 'off'}, "
          f"{'cold ingest' if built else 'reopen'} {ingest_s:.1f} s ({tmp})")
    ranks, refused, lengths, latencies = {}, {}, [], []
    kb.ask("预热")  # first query pays model warm-up
    for q in questions:
        retrieval = kb.search(q["question"], k=10)
        passages = [h.chunk.text for h in retrieval.hits]
        ranks[q["id"]] = first_hit_rank(passages, q["gold"]) if q["gold"] else None
        lengths.extend(len(p) for p in passages[:5])
        t = time.perf_counter()
        answer = kb.ask(q["question"])
        latencies.append((time.perf_counter() - t) * 1000)
        refused[q["id"]] = not answer.answered
    summarise(f"SafeDuty (structure split + hybrid, {embedding})", questions, ranks, refused, lengths, latencies)
    return ranks


def run_baseline(questions: list[dict]) -> dict:
    import bm25s
    import jieba
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    jieba.setLogLevel(60)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=750,
        chunk_overlap=150,
        separators=["\n\n", "\n", "。|！|？", r"\.\s|\!\s|\?\s", "；|;\s", "，|,\s", ""],
        is_separator_regex=True,
        keep_separator=True,
    )
    chunks = []
    library = ROOT / "knowledge" / "library"
    for path in sorted(library.glob("*/*")):
        if path.name == "SOURCES.md":
            continue
        chunks.extend(splitter.split_text(path.read_text(encoding="utf-8")))
    tokenize = lambda s: [t for t in jieba.lcut_for_search(s) if t.strip()]  # noqa: E731
    bm25 = bm25s.BM25()
    bm25.index([tokenize(c) for c in chunks], show_progress=False)
    print(f"baseline index: {len(chunks)} chunks")
    ranks, lengths, latencies = {}, [], []
    for q in questions:
        t = time.perf_counter()
        scores = bm25.get_scores(tokenize(q["question"]))
        top = sorted(range(len(chunks)), key=lambda i: -scores[i])[:10]
        latencies.append((time.perf_counter() - t) * 1000)
        passages = [chunks[i] for i in top]
        ranks[q["id"]] = first_hit_rank(passages, q["gold"]) if q["gold"] else None
        lengths.extend(len(p) for p in passages[:5])
    summarise("naive baseline (recursive 750/150 + jieba BM25)", questions, ranks, {}, lengths, latencies)
    return ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--embedding", default="e5-small")
    parser.add_argument("--data-dir", default=None, help="reuse an index built earlier (skips cold ingest)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--misses", action="store_true", help="list answerable questions missed at 5")
    parser.add_argument("--ranker", action="store_true", help="re-order with the learned ranker (knowledge/ranker.py)")
    parser.add_argument("--embedding-threads", type=int, default=None,
                        help="knowledge.embedding.threads (default: the config default)")
    args = parser.parse_args()
    questions = [json.loads(line) for line in Path(args.questions).read_text(encoding="utf-8").splitlines() if line.strip()]
    ranks = run_project(questions, args.embedding, Path(args.data_dir) if args.data_dir else None, args.ranker,
                        args.embedding_threads)
    if not args.no_baseline:
        base = run_baseline(questions)
        answerable = [q for q in questions if q["kind"] != "unanswerable"]
        for k in (1, 5):
            ours = sum(1 for q in answerable if ranks[q["id"]] and ranks[q["id"]] <= k) / len(answerable)
            theirs = sum(1 for q in answerable if base[q["id"]] and base[q["id"]] <= k) / len(answerable)
            print(f"hit@{k}: project {ours:.3f} vs baseline {theirs:.3f} (ratio {ours / max(theirs, 1e-9):.2f}x)")
    if args.misses:
        for q in questions:
            if q["kind"] != "unanswerable" and not (ranks[q["id"]] and ranks[q["id"]] <= 5):
                print(f"MISS {q['id']} [{q['kind']}] {q['question']}  gold={[g['file'].split('/')[-1][:12] + ' ' + str(g['article']) for g in q['gold']]}")


if __name__ == "__main__":
    main()
