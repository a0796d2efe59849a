"""WeCom (企业微信) channels: the self-built app callback + app messages, and the group robot.

WeComChannel
    GET  /wecom/callback  URL verification: msg_signature/timestamp/nonce/echostr → the decrypted echostr.
    POST /wecom/callback  signed, AES-encrypted messages (wechatpy.enterprise.crypto.WeChatCrypto);
                          checks, dedupe and the 5-second rule are in bot.channels.wx_callback.
    push(userid, text, key=)  POST /cgi-bin/message/send (text, enable_duplicate_check=1) with an
                          access token cached until expiry (GET /cgi-bin/gettoken).

WeComRobotChannel
    push(chat, text, key=)  POST /cgi-bin/webhook/send?key=… as markdown, split at 4,096 bytes.
    The robot allows 20 messages a minute per group: that is the outbox sender's rate limit
    (settings.outbox.limits for this channel: per_chat_per_minute=20), not enforced here.

Errors: errcode 45009/45033/45011 or HTTP 429 → RateLimited; HTTP 5xx, timeouts, errcode -1 →
TransientError; an expired token is refreshed once; any other errcode → PermanentError.
"""
from __future__ import annotations

from typing import Any

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.channels.wx_common import (MAX_BODY, REPLAY_WINDOW, REPLY_TIMEOUT, TEXT_LIMIT_BYTES, ApiClient,
                                    BadRequest, TokenCache, call_with_token, split_bytes)
from bot.channels.wx_callback import CallbackChannel

ROBOT_MARKDOWN_LIMIT = 4096  # bytes
ROBOT_PER_MINUTE = 20
DUPLICATE_CHECK_INTERVAL = 1800  # seconds (WeCom maximum 4 h)


class WeComChannel(CallbackChannel):
    name = "wecom"
    path = "/wecom/callback"

    def __init__(self, corp_id: str, agent_id: int | str, token: str, encoding_aes_key: str, secret: str,
                 api_base: str = "https://qyapi.weixin.qq.com", *, max_body: int = MAX_BODY,
                 replay_window: float = REPLAY_WINDOW, reply_timeout: float = REPLY_TIMEOUT,
                 clock: Any = None, media_dir: Any = None, dispatch: Any = None, dedupe: Any = None,
                 on_late: Any = None, duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL,
                 http_timeout: float = 10.0) -> None:
        kwargs = {"clock": clock} if clock is not None else {}
        super().__init__(max_body=max_body, replay_window=replay_window, reply_timeout=reply_timeout,
                         media_dir=media_dir, dispatch=dispatch, dedupe=dedupe, on_late=on_late, **kwargs)
        self.corp_id = corp_id
        self.agent_id = int(agent_id)
        self.secret = secret
        self.crypto = WeChatCrypto(token, encoding_aes_key, corp_id)
        self.api = ApiClient(api_base, timeout=http_timeout)
        self.tokens = TokenCache(self._fetch_token)
        self.duplicate_check_interval = duplicate_check_interval

    # ------------------------------------------------------------ callback crypto

    def _verify_get(self, q: dict[str, str]) -> str:
        try:
            return self.crypto.check_signature(q.get("msg_signature", ""), q.get("timestamp", ""),
                                               q.get("nonce", ""), q.get("echostr", ""))
        except InvalidSignatureException as exc:
            raise BadRequest(403, "bad msg_signature on URL verification") from exc
        except (InvalidCorpIdException, ValueError, TypeError) as exc:
            raise BadRequest(400, f"echostr does not decrypt ({type(exc).__name__})") from exc

    def _open(self, q: dict[str, str], envelope: dict[str, str], body: bytes) -> str:
        if not envelope.get("Encrypt"):
            raise BadRequest(400, "no <Encrypt> in the body")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": envelope["Encrypt"]}, q.get("msg_signature", ""),
                                                q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException as exc:
            raise BadRequest(403, "bad msg_signature") from exc
        except (InvalidCorpIdException, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BadRequest(400, f"message does not decrypt ({type(exc).__name__})") from exc
        return plain

    def _seal(self, q: dict[str, str], xml: str) -> str:
        return self.crypto.encrypt_message(xml, q.get("nonce", ""), str(int(self.clock())))

    def _media_api(self):
        return self.api, self.tokens

    # ------------------------------------------------------------ app messages

    async def _fetch_token(self) -> tuple[str, float]:
        data = await self.api.call("GET", "/cgi-bin/gettoken",
                                   params={"corpid": self.corp_id, "corpsecret": self.secret})
        return data["access_token"], float(data.get("expires_in", 7200))

    async def push(self, chat: str, text: str, *, key: str) -> None:
        """Send `text` to the member `chat` (userid); duplicates within the interval are dropped by
        WeCom (enable_duplicate_check), so a retry after a crash does not show twice."""
        for part in split_bytes(text, TEXT_LIMIT_BYTES):
            payload = {"touser": chat, "msgtype": "text", "agentid": self.agent_id, "text": {"content": part},
                       "enable_duplicate_check": 1, "duplicate_check_interval": self.duplicate_check_interval}
            await self._send(payload)

    async def _send(self, payload: dict) -> dict:
        return await call_with_token(self.api, self.tokens, "/cgi-bin/message/send", payload)


class WeComRobotChannel:
    """The group robot (群机器人) webhook: pushes into the one group the key belongs to."""

    name = "wecom_robot"
    per_minute = ROBOT_PER_MINUTE

    def __init__(self, webhook_key: str, api_base: str = "https://qyapi.weixin.qq.com",
                 http_timeout: float = 10.0) -> None:
        self.webhook_key = webhook_key
        self.api = ApiClient(api_base, timeout=http_timeout)

    async def push(self, chat: str, text: str, *, key: str) -> None:
        for part in split_bytes(text, ROBOT_MARKDOWN_LIMIT):
            await self.api.call("POST", "/cgi-bin/webhook/send", params={"key": self.webhook_key},
                                json={"msgtype": "markdown", "markdown": {"content": part}})

    async def send(self, chat: str, reply: Any, *, key: str = "") -> None:
        """PushChannel (text, key=) or Channel (Reply) style."""
        text = reply if isinstance(reply, str) else reply.text
        await self.push(chat, text, key=key)
