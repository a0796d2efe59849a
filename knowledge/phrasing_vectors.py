"""Dense side of the article phrasings (knowledge/phrasings.py): each phrasing embedded as a question,
a passage scoring as its nearest phrasing.

A user's question and a phrasing are both questions, so their vectors compare like with like; the
passage's own vector compares a question with statute text. Mixed into the dense signal at 0.2 this
moved the unseen sets (held-out 1-7) from hit@1 0.721 / hit@5 0.921 to 0.751 / 0.938, every set at
least level (docs/benchmarks.md, session 5).

Vectors are stored in Chroma (``kb_phrasings_<space>``, id = hash of the embedding input) so that a
phrasing is embedded once; the bundled library's ship in the vector cache. Search is a matrix
product over the few thousand vectors held in memory — exact, and about a millisecond.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from knowledge.types import Chunk

log = logging.getLogger(__name__)
_BATCH = 256


def phrasing_key(text: str) -> str:
    """Cache key of a phrasing's vector: distinct from passage keys (questions are embedded as queries)."""
    return hashlib.sha256(("query\x1f" + text).encode("utf-8")).hexdigest()[:24]


class PhrasingVectors:
    def __init__(self, client, space: str, embedder, vector_cache=None) -> None:
        self._collection = client.get_or_create_collection(f"kb_phrasings_{space}", embedding_function=None)
        self._embedder = embedder
        self._cache = vector_cache
        self.owner = np.zeros(0, dtype=np.int64)  # chunk position of each row of `matrix`
        self.matrix = np.zeros((0, embedder.dim), dtype=np.float32)

    def build(self, chunks: Sequence[Chunk], phrasings_of) -> None:
        """Vectors for the phrasings of the given chunks (phrasings_of: chunk -> questions)."""
        owner, texts = [], []
        for pos, chunk in enumerate(chunks):
            for text in phrasings_of(chunk):
                owner.append(pos)
                texts.append(text)
        vectors = self.vectors_for(texts)
        self.owner = np.asarray(owner, dtype=np.int64)
        self.matrix = vectors

    def nearest(self, vector: np.ndarray) -> float:
        """Similarity of the nearest phrasing (-1 without any)."""
        return float(np.einsum("ij,j->i", self.matrix, vector.astype(np.float32)).max()) if self.owner.size else -1.0

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk position, similarity of its nearest phrasing) best first, at most k chunks."""
        if not self.owner.size:
            return []
        # einsum, not `@`: a BLAS matrix-vector product wakes OpenBLAS's worker threads, whose spinning
        # then competes with the embedding model's OpenMP threads on small machines (query embedding
        # 3x slower measured on 2 cores); this loop is single-threaded and still under a millisecond.
        sims = np.einsum("ij,j->i", self.matrix, vector.astype(np.float32))
        best: dict[int, float] = {}
        for row in np.argsort(-sims):
            pos = int(self.owner[row])
            if pos not in best:
                best[pos] = float(sims[row])
                if len(best) >= k:
                    break
        return list(best.items())

    def keys_and_vectors(self) -> tuple[list[str], np.ndarray]:
        got = self._collection.get(include=["embeddings"])
        vectors = np.asarray(got["embeddings"] if got["embeddings"] is not None else [], dtype=np.float32)
        return list(got["ids"]), vectors.reshape(len(got["ids"]), self._embedder.dim)

    def vectors_for(self, texts: list[str]) -> np.ndarray:
        """Query vectors of questions, embedded once (Chroma, then the shipped cache, then the model)."""
        keys = [phrasing_key(t) for t in texts]
        unique = dict(zip(keys, texts))
        known: dict[str, np.ndarray] = {}
        ids = sorted(unique)
        for i in range(0, len(ids), _BATCH):
            got = self._collection.get(ids=ids[i : i + _BATCH], include=["embeddings"])
            for key, vector in zip(got["ids"], got["embeddings"] if got["embeddings"] is not None else []):
                known[key] = np.asarray(vector, dtype=np.float32)
        fresh: dict[str, np.ndarray] = {}
        if self._cache is not None:
            fresh.update({key: v for key in ids if key not in known and (v := self._cache.get(key)) is not None})
        missing = [key for key in ids if key not in known and key not in fresh]
        if missing:
            log.info("embedding %d article phrasings", len(missing))
            vectors = self._embedder.embed_queries([unique[key] for key in missing])
            fresh.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
        new = sorted(fresh)
        for i in range(0, len(new), _BATCH):
            part = new[i : i + _BATCH]
            self._collection.upsert(ids=part, embeddings=[fresh[key].tolist() for key in part])
        known.update(fresh)
        out = np.zeros((len(keys), self._embedder.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = known[key]
        return out
