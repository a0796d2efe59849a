"""The local web chat (channel "web"): a tiny inline HTML page at GET / and POST /web/chat.

POST /web/chat takes JSON ``{"user": "...", "text": "..."}`` and answers ``{"replies": [{"text",
"choices"}]}``; the message goes through the same dispatch (safe_route) as every other channel, so
bad text (binary, oversized) gets the router's polite refusal. Bodies over MAX_BODY_BYTES are
refused with 413 before they are read in full. Meant for 127.0.0.1: there is no login.
"""
from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bot.channels.base import Dispatch
from bot.types import Incoming, Reply

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # well above the router's 8,000-character limit in UTF-8 JSON
MAX_USER_CHARS = 64
DEFAULT_USER = "web-user"

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>安全生产值守助手 · 本地网页聊天</title>
<style>
body{font-family:system-ui,sans-serif;max-width:760px;margin:1em auto;padding:0 1em}
#log{border:1px solid #ccc;border-radius:6px;height:60vh;overflow-y:auto;padding:.5em;white-space:pre-wrap}
.me{color:#0b5394;margin:.4em 0}.bot{margin:.4em 0 .8em}
form{display:flex;gap:.5em;margin-top:.5em}#text{flex:1;padding:.4em}#user{width:8em}
</style></head><body>
<h1>安全生产值守助手</h1>
<div id="log"></div>
<form id="f"><input id="user" value="web-user" title="用户 ID"><input id="text" autocomplete="off"
 placeholder="输入问题，例如：安全生产法第二十一条讲什么；或 /help"><button>发送</button></form>
<script>
const log=document.getElementById('log'),f=document.getElementById('f'),t=document.getElementById('text');
function add(cls,s){const d=document.createElement('div');d.className=cls;d.textContent=s;log.appendChild(d);log.scrollTop=log.scrollHeight;}
f.addEventListener('submit',async e=>{e.preventDefault();const text=t.value;if(!text.trim())return;t.value='';add('me','我：'+text);
try{const r=await fetch('/web/chat',{method:'POST',headers:{'Content-Type':'application/json'},
body:JSON.stringify({user:document.getElementById('user').value,text})});const j=await r.json();
if(!r.ok){add('bot',j.error||('错误 '+r.status));return;}
for(const rep of j.replies){add('bot',rep.text+(rep.choices&&rep.choices.length?'\\n选项：'+rep.choices.join(' / '):''));}}
catch(err){add('bot','连接失败：'+err);}});
</script></body></html>
"""


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class WebChatChannel:
    """Replies only: the web page has no push address, so no outbox sender serves it."""

    name = "web"

    def __init__(self, dispatch: Dispatch) -> None:
        self.dispatch = dispatch

    def routes(self) -> list[Route]:
        return [Route("/", self.page, methods=["GET"]), Route("/web/chat", self.chat, methods=["POST"])]

    async def run(self, dispatch: Dispatch) -> None:  # nothing to do in the background
        self.dispatch = dispatch

    async def send(self, chat: str, reply: Reply) -> None:
        log.info("web chat has no push address; push to %s not delivered here", chat)

    async def page(self, request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def chat(self, request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            log.info("web chat: body of %s bytes refused", declared)
            return _error("消息太大了，请精简后再发。", 413)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                log.info("web chat: body over %d bytes refused", MAX_BODY_BYTES)
                return _error("消息太大了，请精简后再发。", 413)
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.info("web chat: body is not UTF-8 JSON")
            return _error('请求应为 JSON：{"user": "...", "text": "..."}', 400)
        if not isinstance(data, dict) or not isinstance(data.get("text", ""), str) \
                or not isinstance(data.get("user", ""), str):
            return _error('请求应为 JSON：{"user": "...", "text": "..."}', 400)
        user = (data.get("user") or "").strip()[:MAX_USER_CHARS] or DEFAULT_USER
        incoming = Incoming(channel="web", chat=user, user=user, text=data.get("text") or "")
        replies = await self.dispatch(incoming)
        return JSONResponse({"replies": [{"text": r.text, "choices": list(r.choices)} for r in replies]})
