"""The knowledge index: chunks, metadata and dense vectors in Chroma; BM25 beside it in memory.

Chroma is the single store, so the same code works embedded (PersistentClient) and against a Chroma
server (HttpClient). Collections per embedding space:
- ``kb_docs_<space>``: one record per live document (title -> content hash of the live revision).
- ``kb_chunks_<space>``: chunk records, each tagged with the content hash of its document revision.
- ``kb_phrasings_<space>`` (with an embedder): vectors of the phrasings and example questions by
  text hash (knowledge/phrasing_vectors.py).

Ingesting a revision writes its chunks first and flips the document record last; readers only see
chunks whose revision hash is live. An ingest interrupted at any point therefore leaves the previous
index usable; chunks of a revision that never went live are swept on the next ingest.
Unchanged chunk text is never embedded twice: vectors are reused by text hash (as simonw/llm does).
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.lexical import LexicalIndex, Segmenter
from knowledge.phrasing_vectors import PhrasingVectors
from knowledge.phrasings import Phrasings
from knowledge.splitter import split_document
from knowledge.types import Chunk, SourceDocument

log = logging.getLogger(__name__)
_BATCH = 256


class KnowledgeIndexError(RuntimeError):
    """A Chinese message for users; the CLI prints it and exits non-zero."""


@dataclass
class DocumentRecord:
    title: str
    content_hash: str
    path: str
    kind: str
    revision_date: str | None
    chunks: int
    ingested_at: float


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    older: list[str] = field(default_factory=list)  # earlier revisions than the indexed one, skipped
    errors: list[str] = field(default_factory=list)


def _space_slug(embedder: Embedder | None) -> str:
    name = embedder.name if embedder else "lexical"
    return re.sub(r"[^a-zA-Z0-9_-]", "-", name)[:40]


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _doc_key(title: str) -> str:
    return hashlib.sha256(title.encode("utf-8")).hexdigest()[:16]


def open_chroma(data_dir: Path | None, server_url: str = ""):
    """Embedded PersistentClient under data_dir, or HttpClient when a server URL is configured."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    try:
        if server_url:
            from urllib.parse import urlparse

            url = urlparse(server_url)
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or 8000,
                ssl=url.scheme == "https",
                settings=settings,
            )
        assert data_dir is not None
        path = data_dir / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:
        where = server_url or str(data_dir / "chroma")
        raise KnowledgeIndexError(
            f"无法打开知识库向量库（{where}）：{exc}。如果该目录由其他版本的 Chroma 创建，"
            "请执行 safeduty kb ingest --reset 重建索引。"
        ) from exc


class KnowledgeIndex:
    def __init__(
        self,
        client,
        embedder: Embedder | None,
        segmenter: Segmenter,
        max_chunk_chars: int = 600,
        vector_cache: VectorCache | None = None,
        phrasings: Phrasings | None = None,
    ):
        self.embedder = embedder
        self.phrasings = phrasings or Phrasings()
        self.vector_cache = vector_cache
        self.segmenter = segmenter
        self.max_chunk_chars = max_chunk_chars
        space = _space_slug(embedder)
        try:
            self._docs = client.get_or_create_collection(f"kb_docs_{space}", embedding_function=None)
            self._chunks = client.get_or_create_collection(
                f"kb_chunks_{space}", embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            self.phrasing_vectors = PhrasingVectors(client, space, embedder, vector_cache) if embedder else None
        except Exception as exc:
            raise KnowledgeIndexError(
                f"知识库索引无法读取：{exc}。请执行 safeduty kb ingest --reset 重建索引。"
            ) from exc
        self._client = client
        self.chunks: list[Chunk] = []
        self._stored = 0  # records in the Chroma collection (set by reload)
        self.chunk_ids: list[str] = []
        self._position: dict[str, int] = {}
        self.lexical = LexicalIndex(segmenter, [])
        self.titles: set[str] = set()
        self._topic_gate = None
        self._example_gate = None
        self.reload()

    # ------------------------------------------------------------ reading

    def documents(self) -> list[DocumentRecord]:
        got = self._docs.get(include=["metadatas"])
        records = [
            DocumentRecord(
                title=m["title"],
                content_hash=m["content_hash"],
                path=m.get("path", ""),
                kind=m.get("kind", ""),
                revision_date=m.get("revision_date") or None,
                chunks=int(m.get("chunks", 0)),
                ingested_at=float(m.get("ingested_at", 0)),
            )
            for m in got["metadatas"] or []
        ]
        return sorted(records, key=lambda r: r.title)

    def reload(self) -> None:
        """Load live chunks and rebuild BM25; called at start and after every change."""
        live = {d.content_hash for d in self.documents()}
        got = self._chunks.get(include=["documents", "metadatas"]) if live else {"ids": []}
        rows = [
            (cid, text, meta)
            for cid, text, meta in zip(got["ids"], got.get("documents") or [], got.get("metadatas") or [])
            if meta["doc_hash"] in live
        ]
        rows.sort(key=lambda row: (row[2]["title"], row[2]["ordinal"]))
        self.chunk_ids = [cid for cid, _, _ in rows]
        self.chunks = [_chunk_from_record(text, meta) for _, text, meta in rows]
        self._position = {cid: i for i, cid in enumerate(self.chunk_ids)}
        self.lexical = LexicalIndex(
            self.segmenter, [lexical_text(c, self.phrasings.for_chunk(c)) for c in self.chunks]
        )
        self.titles = {c.doc_title for c in self.chunks}
        # records in the collection (superseded revisions included), for the query's n_results:
        # asking Chroma to count on every question cost ~1 ms
        self._stored = len(got["ids"])
        if self.phrasing_vectors is not None:
            try:
                self.phrasing_vectors.build(self.chunks, self.phrasings.for_chunk)
            except Exception as exc:  # an optional signal: an embedding service or store failing must not stop the index
                log.warning("phrasing vectors unavailable, retrieval goes on without them: %s", exc)

    @property
    def example_gate(self):
        """Questions the library does not answer; built on first use (embeds them once); None without
        phrasing vectors."""
        if self._example_gate is None and self.phrasing_vectors is not None:
            from knowledge.scope import ExampleGate, load_outside_examples

            self._example_gate = ExampleGate(self.phrasing_vectors, load_outside_examples())
        return self._example_gate

    @property
    def topic_gate(self):
        """Built on first use: it embeds a few dozen topic descriptions."""
        if self._topic_gate is None and self.embedder is not None:
            from knowledge.scope import TopicGate

            self._topic_gate = TopicGate(self.embedder)
        return self._topic_gate

    def position(self, chunk_id: str) -> int | None:
        return self._position.get(chunk_id)

    def embed_query(self, query: str) -> np.ndarray | None:
        if self.embedder is None:
            return None
        return self.embedder.embed_queries([query])[0]

    def dense_search(self, vector: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        """(chunk position, cosine similarity) best first; empty when no embedder is configured."""
        if vector is None or not self.chunks:
            return []
        # Over-fetch: superseded revisions may still hold slots until the next sweep.
        result = self._chunks.query(
            query_embeddings=[vector.tolist()], n_results=max(1, min(k * 2, self._stored)), include=["distances"]
        )
        out = []
        for cid, distance in zip(result["ids"][0], result["distances"][0]):
            pos = self._position.get(cid)
            if pos is not None:
                out.append((pos, 1.0 - float(distance)))
        return out[:k]

    def phrasing_search(self, vector: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        """(chunk position, similarity of its nearest phrasing) best first; empty without an embedder."""
        if vector is None or self.phrasing_vectors is None:
            return []
        return self.phrasing_vectors.search(vector, k)

    # ------------------------------------------------------------ writing

    def ingest(self, doc: SourceDocument) -> str:
        """Index one document; returns 'added', 'replaced', 'unchanged' or 'older' (an earlier
        revision than the one indexed, by the revision dates in the texts: kept out)."""
        key = _doc_key(doc.title)
        current = self._docs.get(ids=[key], include=["metadatas"])
        old = current["metadatas"][0] if current["ids"] else None
        old_hash = old["content_hash"] if old else None
        if old_hash == doc.content_hash:
            return "unchanged"
        if old and doc.revision_date and old.get("revision_date") and doc.revision_date < old["revision_date"]:
            return "older"
        chunks = split_document(doc, self.max_chunk_chars)
        if not chunks:
            raise KnowledgeIndexError(f"《{doc.title}》没有可索引的正文。")
        self._write_chunks(doc, chunks)
        # The commit point: one record flips the live revision.
        self._docs.upsert(
            ids=[key],
            embeddings=[[1.0]],  # Chroma needs a vector; the catalog is never searched by similarity
            documents=[doc.title],
            metadatas=[
                {
                    "title": doc.title,
                    "content_hash": doc.content_hash,
                    "path": doc.path,
                    "kind": doc.kind.value,
                    "revision_date": doc.revision_date or "",
                    "chunks": len(chunks),
                    "ingested_at": time.time(),
                }
            ],
        )
        if old_hash:
            self._chunks.delete(where={"doc_hash": old_hash})
        return "replaced" if old_hash else "added"

    def remove(self, title: str) -> bool:
        key = _doc_key(title)
        current = self._docs.get(ids=[key], include=["metadatas"])
        if not current["ids"]:
            return False
        self._docs.delete(ids=[key])
        self._chunks.delete(where={"doc_hash": current["metadatas"][0]["content_hash"]})
        return True

    def sweep(self) -> int:
        """Delete chunks of revisions that never went live (an interrupted ingest)."""
        live = {d.content_hash for d in self.documents()}
        got = self._chunks.get(include=["metadatas"])
        stale = [cid for cid, m in zip(got["ids"], got["metadatas"] or []) if m["doc_hash"] not in live]
        for i in range(0, len(stale), _BATCH):
            self._chunks.delete(ids=stale[i : i + _BATCH])
        return len(stale)

    def _write_chunks(self, doc: SourceDocument, chunks: list[Chunk]) -> None:
        ids = [f"{doc.content_hash[:16]}-{c.ordinal:05d}" for c in chunks]
        hashes = [_text_hash(embedding_text(c)) for c in chunks]
        vectors = self._vectors_for(chunks, hashes)
        for i in range(0, len(chunks), _BATCH):
            part = slice(i, i + _BATCH)
            self._chunks.upsert(
                ids=ids[part],
                embeddings=vectors[part].tolist(),
                documents=[c.text for c in chunks[part]],
                metadatas=[_chunk_metadata(doc, c, h) for c, h in zip(chunks[part], hashes[part])],
            )

    def _vectors_for(self, chunks: list[Chunk], hashes: list[str]) -> np.ndarray:
        if self.embedder is None:
            return np.ones((len(chunks), 1), dtype=np.float32)
        known = self._known_vectors(hashes)
        if self.vector_cache is not None:
            known.update({h: v for h in hashes if h not in known and (v := self.vector_cache.get(h)) is not None})
        missing = [i for i, h in enumerate(hashes) if h not in known]
        fresh = self.embedder.embed_passages([embedding_text(chunks[i]) for i in missing]) if missing else []
        out = np.zeros((len(chunks), self.embedder.dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = known[h] if h in known else 0
        for j, i in enumerate(missing):
            out[i] = fresh[j]
        return out

    def _known_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        known: dict[str, np.ndarray] = {}
        unique = sorted(set(hashes))
        for i in range(0, len(unique), _BATCH):
            got = self._chunks.get(
                where={"text_hash": {"$in": unique[i : i + _BATCH]}}, include=["metadatas", "embeddings"]
            )
            for meta, vector in zip(got["metadatas"] or [], got["embeddings"] if got["embeddings"] is not None else []):
                known[meta["text_hash"]] = np.asarray(vector, dtype=np.float32)
        return known


class VectorCache:
    """Vectors shipped with the bundled library, keyed by the hash of the exact embedding input.

    Embedding the bundled corpus with e5-small takes about 1.5 minutes on two cores; the vectors
    are a pure function of (model, text), so they ship precomputed and are used only when the hash
    matches. A changed splitter or document simply misses the cache and is embedded afresh.

    Stored as int8 codes with one scale per vector (max |component| / 127): half the size of float16
    (passages, phrasings and example questions: 5.5 -> 3.0 MB), and a cosine changes by less than
    0.001 — far below the differences retrieval and the refusal margins act on. Files written as
    float16 (``vectors``) are still read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._vectors: dict[str, np.ndarray] | None = None

    def get(self, text_hash: str) -> np.ndarray | None:
        if self._vectors is None:
            self._vectors = {}
            if self.path.exists():
                try:
                    with np.load(self.path) as data:
                        hashes = data["hashes"].astype(str).tolist()
                        if "codes" in data:
                            vectors = data["codes"].astype(np.float32) * data["scales"][:, None].astype(np.float32)
                            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                        else:
                            vectors = data["vectors"].astype(np.float32)
                        self._vectors = dict(zip(hashes, vectors))
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("ignoring unreadable vector cache %s: %s", self.path, exc)
        return self._vectors.get(text_hash)

    @staticmethod
    def write(path: Path, index: "KnowledgeIndex") -> int:
        got = index._chunks.get(include=["metadatas", "embeddings"])
        hashes = [m["text_hash"] for m in got["metadatas"]]
        vectors = np.asarray(got["embeddings"], dtype=np.float32)
        if index.phrasing_vectors is not None:
            keys, phrasing_vectors = index.phrasing_vectors.keys_and_vectors()
            hashes += keys
            vectors = np.vstack([vectors, phrasing_vectors.astype(np.float32)])
        scales = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
        codes = np.round(vectors / scales[:, None]).astype(np.int8)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, hashes=np.array(hashes, dtype="S"), codes=codes, scales=scales.astype(np.float32))
        return len(hashes)


def lexical_text(chunk: Chunk, phrasings: tuple[str, ...] = ()) -> str:
    """What BM25 sees: the passage plus its place (章 titles such as 法律责任 carry meaning) and the
    everyday phrasings of its article (knowledge/phrasings.py)."""
    return " ".join((*chunk.heading_path, chunk.text, *phrasings))


def embedding_text(chunk: Chunk) -> str:
    return " ".join((chunk.doc_title, *chunk.heading_path[-1:], chunk.text))


def _chunk_metadata(doc: SourceDocument, chunk: Chunk, text_hash: str) -> dict:
    return {
        "doc_hash": doc.content_hash,
        "title": doc.title,
        "revision_date": doc.revision_date or "",
        "article": chunk.article or "",
        "article_no": chunk.article_no if chunk.article_no is not None else -1,
        "part": chunk.part,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "heading": "\x1f".join(chunk.heading_path),
        "text_hash": text_hash,
    }


def _chunk_from_record(text: str, meta: dict) -> Chunk:
    return Chunk(
        doc_title=meta["title"],
        text=text,
        start=int(meta["start"]),
        end=int(meta["end"]),
        heading_path=tuple(h for h in meta.get("heading", "").split("\x1f") if h),
        article=meta["article"] or None,
        article_no=None if int(meta["article_no"]) < 0 else int(meta["article_no"]),
        part=int(meta["part"]),
        ordinal=int(meta["ordinal"]),
        meta={"revision_date": meta.get("revision_date") or None},
    )
