"""The scale-out path: the same index code against a real Chroma server process on 127.0.0.1."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.app import build_knowledge
from tests.conftest import LIBRARY, lexical_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        pytest.skip("the chroma CLI is not installed beside this Python")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # wait for the heartbeat (bounded: at most ~20 s)
            try:
                if httpx.get(url + "/api/v2/heartbeat", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail("chroma server exited during start-up")
            time.sleep(0.1)
        else:
            pytest.fail("chroma server did not answer its heartbeat")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_index_lives_in_the_chroma_server(chroma_server, tmp_path):
    config = lexical_config()
    config.knowledge.chroma.url = chroma_server
    kb = build_knowledge(config, tmp_path / "worker-a")
    kb.ingest_paths([LIBRARY / "laws" / "安全生产许可证条例.md"])
    # a second worker with its own (empty) data directory sees the same index through the server
    other = build_knowledge(config, tmp_path / "worker-b")
    assert "安全生产许可证条例" in other.index.titles
    assert other.ask("安全生产许可证条例第二条").answered
    assert not (tmp_path / "worker-b" / "kb" / "chroma").exists()
