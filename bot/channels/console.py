"""Console channel: an interactive terminal chat, or — when stdin is not a terminal — one message
per input line and the replies printed after it, so a conversation can be scripted."""
from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.channels.base import Dispatch
from bot.types import Incoming, Reply

PROMPT = "你> "
EXIT_WORDS = {"/quit", "/exit", "退出"}


class ConsoleChannel:
    name = "console"

    def __init__(
        self,
        user: str = "console-user",
        chat: str = "console",
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.user, self.chat = user, chat
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty() if interactive is None else interactive

    async def run(self, dispatch: Dispatch) -> None:
        if self.interactive:
            self._write("安全生产值守助手（控制台）。直接输入问题，/help 查看用法，/quit 退出。\n")
        while True:
            line = await asyncio.to_thread(self._read_line)
            if line is None:
                break
            text = line.rstrip("\r\n")
            if text.strip() in EXIT_WORDS:
                break
            if not text.strip() and not self.interactive:
                continue  # blank lines separate nothing in a script
            incoming = Incoming(channel=self.name, chat=self.chat, user=self.user, text=text)
            for reply in await dispatch(incoming):
                await self.send(self.chat, reply)

    def _read_line(self) -> str | None:
        if self.interactive:
            try:
                return input(PROMPT)
            except EOFError:
                return None
        line = self.stdin.readline()
        return line if line else None

    async def send(self, chat: str, reply: Reply) -> None:
        text = reply.text
        if reply.choices:
            text += "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(reply.choices, start=1))
        prefix = "助手> " if self.interactive else ""
        self._write(f"{prefix}{text}\n" + ("\n" if self.interactive else "---\n"))

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
