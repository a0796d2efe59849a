"""WeChat Official Account channel at the protocol level (safe mode), against a fake API server."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from wechatpy.crypto import WeChatCrypto

from bot.channels.wechat_mp import WeChatMPChannel
from bot.delivery_limits import PermanentError, RateLimited, TransientError
from bot.types import Reply
from tests.fake_wx_api import FakeWxApi

# The official WXBizMsgCrypt sample vector (public sample data), kept with the tests.
VECTOR = json.loads((Path(__file__).resolve().parent / "data" / "wecom_official_sample.json").read_text())
TOKEN, AES_KEY, APP_ID = VECTOR["token"], VECTOR["encoding_aes_key"], VECTOR["receive_id"]
NOW = 1_760_000_000


def flat(xml: str) -> dict[str, str]:
    return {c.tag: c.text or "" for c in SafeET.fromstring(xml)}


def sign(ts: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.seen, self.gate = [], gate

    async def __call__(self, incoming):
        self.seen.append(incoming)
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 5)
        return [Reply(f"答：{incoming.text}")]


def make(api_url="http://127.0.0.1:9", clock=NOW, **kw):
    return WeChatMPChannel(APP_ID, TOKEN, AES_KEY, "SECRET", api_url, clock=lambda: clock, **kw)


def app_for(channel):
    return TestClient(Starlette(routes=channel.routes()))


def encrypted(xml: str, ts: int = NOW, nonce: str = "n0nce", openid: str = "oUser"):
    enc = flat(WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(xml, nonce, str(ts)))
    params = {"signature": sign(str(ts), nonce), "timestamp": str(ts), "nonce": nonce, "openid": openid,
              "encrypt_type": "aes", "msg_signature": enc["MsgSignature"]}
    body = f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{enc['Encrypt']}]]></Encrypt></xml>"
    return params, body


def msg(kind_xml: str, user="oUser", msg_id="1001", ts=NOW):
    return (f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime>{kind_xml}<MsgId>{msg_id}</MsgId></xml>")


def text(content="你好", **kw):
    return msg(f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>", **kw)


def open_reply(body: str) -> dict[str, str]:
    env = flat(body)
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        {"Encrypt": env["Encrypt"]}, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
    return flat(plain)


def test_official_vector_decrypts_with_the_mp_crypto_and_route():
    m = VECTOR["message"]
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    plain = crypto.decrypt_message(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])
    assert flat(plain)["Content"] == "hello" and flat(plain)["MsgId"] == "4561255354251345929"
    rec = Recorder()
    ch = make(clock=int(m["timestamp"]), dispatch=rec)
    params = {"signature": sign(m["timestamp"], m["nonce"]), "timestamp": m["timestamp"], "nonce": m["nonce"],
              "encrypt_type": "aes", "msg_signature": m["msg_signature"], "openid": "mycreate"}
    with app_for(ch) as client:
        r = client.post("/wechat/callback", params=params, content=m["body"])
    assert r.status_code == 200 and rec.seen[0].text == "hello" and rec.seen[0].channel == "wechat_mp"
    assert open_reply(r.text)["Content"] == "答：hello"


def test_url_verification_and_forged_signature(caplog):
    ch = make(dispatch=Recorder())
    ts, nonce = str(NOW), "123"
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        r = client.get("/wechat/callback", params={"signature": sign(ts, nonce), "timestamp": ts,
                                                   "nonce": nonce, "echostr": "e42"})
        assert r.status_code == 200 and r.text == "e42"
        r = client.get("/wechat/callback", params={"signature": "f" * 40, "timestamp": ts, "nonce": nonce,
                                                   "echostr": "e42"})
        assert r.status_code == 403
        params, body = encrypted(text())
        for forged in ({"signature": "0" * 40}, {"msg_signature": "0" * 40}):
            assert client.post("/wechat/callback", params=params | forged, content=body).status_code == 403
    assert not ch.dispatch.seen and "refused 403" in caplog.text


def test_round_trip_passive_reply_and_dedupe():
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(text("危化品仓库怎么查", msg_id="555"))
    with app_for(ch) as client:
        first = client.post("/wechat/callback", params=params, content=body)
        again = client.post("/wechat/callback", params=params, content=body)
    reply = open_reply(first.text)
    assert reply["Content"] == "答：危化品仓库怎么查" and reply["ToUserName"] == "oUser"
    assert reply["FromUserName"] == "gh_test"
    assert again.text == "success" and len(rec.seen) == 1


def test_old_timestamp_doctype_and_size_are_refused(caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        params, body = encrypted(text(), ts=NOW - 1000)
        assert client.post("/wechat/callback", params=params, content=body).status_code == 403
        params, _ = encrypted(text())
        bomb = ('<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>')
        assert client.post("/wechat/callback", params=params, content=bomb).status_code == 400
        xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'
        assert client.post("/wechat/callback", params=params, content=xxe).status_code == 400
        big = "<xml><Encrypt>" + "A" * (64 * 1024) + "</Encrypt></xml>"
        assert client.post("/wechat/callback", params=params, content=big).status_code == 413
        plain = text()  # plain mode while safe mode is configured
        assert client.post("/wechat/callback", params={k: params[k] for k in ("signature", "timestamp", "nonce")},
                           content=plain).status_code == 400
    assert not rec.seen
    assert "replay window" in caplog.text and "unsafe XML refused" in caplog.text and "refused 413" in caplog.text


def test_subscribe_location_and_unsupported():
    rec = Recorder()
    ch = make(dispatch=rec)
    sub = ("<xml><ToUserName>gh_test</ToUserName><FromUserName>oNew</FromUserName><CreateTime>5</CreateTime>"
           "<MsgType>event</MsgType><Event>subscribe</Event></xml>")
    loc = msg("<MsgType>location</MsgType><Location_X>30.5</Location_X><Location_Y>114.2</Location_Y>"
              "<Scale>16</Scale><Label>化工园区</Label>", msg_id="2")
    voice = msg("<MsgType>voice</MsgType><MediaId>V1</MediaId>", msg_id="3")
    image = msg("<MsgType>image</MsgType><PicUrl>http://mmbiz/p.jpg</PicUrl><MediaId>M9</MediaId>", msg_id="4")
    with app_for(ch) as client:
        answers = []
        for xml in (sub, loc, voice, image):
            params, body = encrypted(xml)
            answers.append(open_reply(client.post("/wechat/callback", params=params, content=body).text))
    assert rec.seen[0].text == "/start" and rec.seen[0].user == "oNew"
    assert rec.seen[1].attachments[0].data["lat"] == 30.5
    assert [a.kind for a in rec.seen[2].attachments] == ["voice"]  # the router names what it accepts
    photo = rec.seen[3].attachments[0]  # no media dir: the PicUrl is kept
    assert photo.kind == "photo" and photo.path == "" and photo.data["url"] == "http://mmbiz/p.jpg"


def test_slow_dispatch_success_then_customer_service_message():
    gate = threading.Event()
    rec = Recorder(gate)
    with FakeWxApi() as api:
        ch = make(api.url, dispatch=rec, reply_timeout=0.2)
        params, body = encrypted(text("慢", user="oSlow"))
        with app_for(ch) as client:
            r = client.post("/wechat/callback", params=params, content=body)
            assert r.text == "success"
            gate.set()
            sends = api.wait_for("/cgi-bin/message/custom/send")
        assert sends[0]["json"] == {"touser": "oSlow", "msgtype": "text", "text": {"content": "答：慢"}}
        assert api.calls[0]["path"] == "/cgi-bin/token" and api.calls[0]["query"]["appid"] == APP_ID


@pytest.mark.parametrize("sent_ago", [5, 4.2])
def test_a_callback_with_no_time_left_is_answered_success_at_once(sent_ago):
    """The platform's 5 s count from its `timestamp` — whole seconds, so from the start of that
    second: 5 s after it (waited in a queue), or 4.2 s after it (the ~4 s budget is spent), even an
    instant answer is too late to be passive, so "success" goes back at once and the answer follows
    as a customer-service message."""
    with FakeWxApi() as api:
        late = make(api.url, dispatch=Recorder(), clock=NOW + sent_ago)
        params, body = encrypted(text("排队太久", user="oQueued", msg_id="2001"))
        with app_for(late) as client:
            assert client.post("/wechat/callback", params=params, content=body).text == "success"
            sends = api.wait_for("/cgi-bin/message/custom/send")
        assert sends[0]["json"]["text"]["content"] == "答：排队太久"


def test_a_callback_sent_a_second_ago_is_answered_passively():
    fresh = make(dispatch=Recorder(), clock=NOW + 1)
    params, body = encrypted(text("刚发的", msg_id="2002"))
    with app_for(fresh) as client:
        assert open_reply(client.post("/wechat/callback", params=params, content=body).text)["Content"] == "答：刚发的"


def test_token_cached_and_errors_mapped():
    with FakeWxApi() as api:
        ch = make(api.url)

        async def two():
            await ch.push("o1", "一", key="a")
            await ch.push("o2", "二", key="b")
        asyncio.run(two())
        assert api.paths().count("/cgi-bin/token") == 1
        assert api.paths().count("/cgi-bin/message/custom/send") == 2
        for answer, error in (((200, {"errcode": 45009}), RateLimited), ((503, {}), TransientError),
                              ((200, {"errcode": 45015, "errmsg": "response out of time limit"}), PermanentError)):
            api.scripted["/cgi-bin/message/custom/send"] = [answer]
            with pytest.raises(error):
                asyncio.run(ch.push("o1", "x", key="c"))
