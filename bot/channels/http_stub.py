"""A push channel for a simple HTTP test platform (used by bench/outbox_crash.py).

Protocol: ``POST {base_url}/send`` with JSON ``{"chat", "text", "key"}``; the platform answers
200 ``{"message_id": ...}`` — the *original* id when it has already seen the key (like WeCom's
enable_duplicate_check) — 429 with ``Retry-After``, or 5xx. Errors map onto bot.delivery_limits.
"""
from __future__ import annotations

import httpx

from bot.delivery_limits import PermanentError, RateLimited, TransientError


class HttpStubChannel:
    def __init__(self, base_url: str, name: str = "stub", timeout: float = 5.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(timeout=timeout)

    async def send(self, chat: str, text: str, *, key: str) -> str:
        try:
            response = await self.client.post(f"{self.base_url}/send", json={"chat": chat, "text": text, "key": key})
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"transport: {exc}") from exc
        status = response.status_code
        if status == 429:
            try:
                retry_after = float(response.headers.get("Retry-After", "1"))
            except ValueError:
                retry_after = 1.0
            raise RateLimited(retry_after, f"HTTP 429 {response.text[:100]}")
        if status >= 500:
            raise TransientError(f"HTTP {status} {response.text[:100]}")
        if status >= 400:
            raise PermanentError(f"HTTP {status} {response.text[:100]}")
        return response.json().get("message_id", "")

    async def aclose(self) -> None:
        await self.client.aclose()
