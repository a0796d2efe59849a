"""WeChat Official Account (公众号) channel: the callback URL and the customer-service message API.

    GET  /wechat/callback  server verification: signature/timestamp/nonce/echostr → echostr
                           (wechatpy.utils.check_signature).
    POST /wechat/callback  safe mode (encrypt_type=aes, wechatpy.crypto.WeChatCrypto): `signature` and
                           `msg_signature` are both verified; plain mode only when no EncodingAESKey is
                           configured. Checks, dedupe and the 5-second rule: bot.channels.wx_callback.
    push(openid, text, key=)  POST /cgi-bin/message/custom/send (late replies, pushes), access token
                           cached until expiry (GET /cgi-bin/token).

Text, image (downloaded with /cgi-bin/media/get when a media dir is set), location and events
(subscribe → dispatch of "/start", the welcome) are handled; other types get a short note.
"""
from __future__ import annotations

from typing import Any

from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from bot.channels.wx_common import (MAX_BODY, REPLAY_WINDOW, REPLY_TIMEOUT, TEXT_LIMIT_BYTES, ApiClient,
                                    BadRequest, TokenCache, call_with_token, split_bytes)
from bot.channels.wx_callback import CallbackChannel


class WeChatMPChannel(CallbackChannel):
    name = "wechat_mp"
    path = "/wechat/callback"

    def __init__(self, app_id: str, token: str, encoding_aes_key: str | None, secret: str,
                 api_base: str = "https://api.weixin.qq.com", *, max_body: int = MAX_BODY,
                 replay_window: float = REPLAY_WINDOW, reply_timeout: float = REPLY_TIMEOUT,
                 clock: Any = None, media_dir: Any = None, dispatch: Any = None, dedupe: Any = None,
                 on_late: Any = None, http_timeout: float = 10.0) -> None:
        kwargs = {"clock": clock} if clock is not None else {}
        super().__init__(max_body=max_body, replay_window=replay_window, reply_timeout=reply_timeout,
                         media_dir=media_dir, dispatch=dispatch, dedupe=dedupe, on_late=on_late, **kwargs)
        self.app_id = app_id
        self.token = token
        self.secret = secret
        self.crypto = WeChatCrypto(token, encoding_aes_key, app_id) if encoding_aes_key else None
        self.api = ApiClient(api_base, timeout=http_timeout)
        self.tokens = TokenCache(self._fetch_token)

    # ------------------------------------------------------------ callback crypto

    def _check(self, q: dict[str, str]) -> None:
        try:
            check_signature(self.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException as exc:
            raise BadRequest(403, "bad signature") from exc

    def _verify_get(self, q: dict[str, str]) -> str:
        self._check(q)
        return q.get("echostr", "")

    def _open(self, q: dict[str, str], envelope: dict[str, str], body: bytes) -> str:
        self._check(q)
        if q.get("encrypt_type", "raw") != "aes":
            if self.crypto is not None:
                raise BadRequest(400, "plain-mode message while safe mode (AES) is configured")
            return body.decode("utf-8", errors="replace")
        if self.crypto is None:
            raise BadRequest(400, "encrypted message but no EncodingAESKey configured")
        if not envelope.get("Encrypt"):
            raise BadRequest(400, "no <Encrypt> in the body")
        try:
            return self.crypto.decrypt_message({"Encrypt": envelope["Encrypt"]}, q.get("msg_signature", ""),
                                               q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException as exc:
            raise BadRequest(403, "bad msg_signature") from exc
        except (InvalidAppIdException, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BadRequest(400, f"message does not decrypt ({type(exc).__name__})") from exc

    def _seal(self, q: dict[str, str], xml: str) -> str:
        if q.get("encrypt_type") == "aes" and self.crypto is not None:
            return self.crypto.encrypt_message(xml, q.get("nonce", ""), str(int(self.clock())))
        return xml

    def _media_api(self):
        return self.api, self.tokens

    # ------------------------------------------------------------ customer-service messages

    async def _fetch_token(self) -> tuple[str, float]:
        data = await self.api.call("GET", "/cgi-bin/token", params={"grant_type": "client_credential",
                                                                    "appid": self.app_id, "secret": self.secret})
        return data["access_token"], float(data.get("expires_in", 7200))

    async def push(self, chat: str, text: str, *, key: str) -> None:
        """Customer-service text to `chat` (openid). WeChat only allows it within 48 h of the
        user's last message (errcode 45015 → PermanentError)."""
        for part in split_bytes(text, TEXT_LIMIT_BYTES):
            await self._send({"touser": chat, "msgtype": "text", "text": {"content": part}})

    async def _send(self, payload: dict) -> dict:
        return await call_with_token(self.api, self.tokens, "/cgi-bin/message/custom/send", payload)
