"""Dense retrieval through the pluggable embedding interface, against a fake OpenAI-compatible
embeddings server on 127.0.0.1 (real HTTP), with vectors stored in real embedded Chroma."""
import pytest

from bot.app import build_knowledge
from bot.config import Config
from knowledge.embeddings import EmbeddingError, EmbeddingSpec, create_embedder
from tests.conftest import LIBRARY
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def openai_config(fake):
    config = Config()
    config.knowledge.embedding.provider = "openai"
    config.knowledge.embedding.base_url = fake.base_url
    config.knowledge.embedding.model = "fake-embed"
    return config


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def test_vectors_are_stored_and_searched_in_chroma(openai_config, tmp_path, fake):
    kb = build_knowledge(openai_config, tmp_path)
    kb.ingest_paths([LIBRARY / "laws" / "安全生产许可证条例.md"])
    retrieval = kb.search("安全生产许可证的有效期是几年", k=5)
    assert any(h.dense_rank is not None for h in retrieval.hits)
    assert kb.index._chunks.count() == len(kb.index.chunks)


def test_unchanged_text_is_not_embedded_again(openai_config, tmp_path, fake):
    kb = build_knowledge(openai_config, tmp_path)
    law = tmp_path / "law.md"
    law.write_text((LIBRARY / "laws" / "安全生产许可证条例.md").read_text(encoding="utf-8"), encoding="utf-8")
    kb.ingest_paths([law])
    embedded_before = sum(len(r.body["input"]) for r in fake.requests if r.path.endswith("/embeddings"))
    law.write_text(law.read_text(encoding="utf-8") + "\n第二十五条 本条为测试新增。\n", encoding="utf-8")
    assert kb.ingest_paths([law]).replaced
    embedded_after = sum(len(r.body["input"]) for r in fake.requests if r.path.endswith("/embeddings"))
    assert embedded_after - embedded_before == 1  # only the new article; the other 24 reuse their vectors


def test_unreachable_embedding_endpoint_is_a_clear_error():
    with FakeOpenAI() as server:
        url = server.base_url
    with pytest.raises(EmbeddingError, match="向量服务调用失败"):
        create_embedder(EmbeddingSpec(provider="openai", base_url=url, model="m"))


def test_missing_sentence_transformers_dir_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddingError, match="目录不存在"):
        create_embedder(EmbeddingSpec(provider="sentence-transformers", model_dir=str(tmp_path / "none")))


def test_shipped_vector_cache_round_trips_and_spares_the_embedding(openai_config, tmp_path, fake, monkeypatch):
    """A cache written from one index (int8 codes, a scale per vector) gives another index the same
    vectors, to within a cosine of 0.001, without asking the embedding service again — passages and
    their phrasings alike."""
    import numpy as np

    from knowledge.index import VectorCache

    law = LIBRARY / "laws" / "安全生产许可证条例.md"
    first = build_knowledge(openai_config, tmp_path / "first")
    first.ingest_paths([law])
    shipped = tmp_path / "vectors"
    assert VectorCache.write(shipped / f"{first.index.embedder.name}.npz", first.index) > len(first.index.chunks)

    monkeypatch.setattr("bot.app.BUNDLED_VECTORS", shipped)  # where build_knowledge looks for the cache
    second = build_knowledge(openai_config, tmp_path / "second")
    asked_before = sum(len(r.body["input"]) for r in fake.requests if r.path.endswith("/embeddings"))
    second.ingest_paths([law])
    asked_after = sum(len(r.body["input"]) for r in fake.requests if r.path.endswith("/embeddings"))
    assert asked_after == asked_before

    def vectors(kb):
        got = kb.index._chunks.get(include=["metadatas", "embeddings"])
        return {m["text_hash"]: np.asarray(v) for m, v in zip(got["metadatas"], got["embeddings"])}

    original, cached = vectors(first), vectors(second)
    assert original.keys() == cached.keys()
    assert min(float(original[h] @ cached[h]) for h in original) > 0.999
