"""WeCom channel at the protocol level: the official WXBizMsgCrypt sample vector, callbacks built
with the official algorithm, refusals, the 5-second rule and the app-message API (fake server)."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.channels.wecom import WeComChannel, WeComRobotChannel
from bot.delivery_limits import PermanentError, RateLimited, TransientError
from bot.types import Reply
from tests.fake_wx_api import FakeWxApi

# The official WXBizMsgCrypt sample vector (public sample data), kept with the tests.
VECTOR = json.loads((Path(__file__).resolve().parent / "data" / "wecom_official_sample.json").read_text())
TOKEN, AES_KEY, CORP_ID = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7"
SAMPLE_TS = 1409659813
NOW = 1_760_000_000


def flat(xml: str) -> dict[str, str]:
    return {c.tag: c.text or "" for c in SafeET.fromstring(xml)}


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.seen = []
        self.gate = gate

    async def __call__(self, incoming):
        self.seen.append(incoming)
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 5)
        return [Reply(f"答：{incoming.text}")]


def make(api_url="http://127.0.0.1:9", clock=NOW, **kw):
    return WeComChannel(CORP_ID, 218, TOKEN, AES_KEY, "SECRET", api_url, clock=lambda: clock, **kw)


def app_for(channel):
    return TestClient(Starlette(routes=channel.routes()))


def encrypted(xml: str, ts: int = NOW, nonce: str = "n0nce"):
    enc = flat(WeChatCrypto(TOKEN, AES_KEY, CORP_ID).encrypt_message(xml, nonce, str(ts)))
    params = {"msg_signature": enc["MsgSignature"], "timestamp": str(ts), "nonce": nonce}
    body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{enc['Encrypt']}]]>"
            f"</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
    return params, body


def text_msg(content="你好", msg_id="1001", user="zhangsan", ts=NOW):
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]>"
            f"</Content><MsgId>{msg_id}</MsgId><AgentID>218</AgentID></xml>")


def open_reply(text: str) -> dict[str, str]:
    env = flat(text)
    plain = WeChatCrypto(TOKEN, AES_KEY, CORP_ID).decrypt_message(
        {"Encrypt": env["Encrypt"]}, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
    return flat(plain)


# ------------------------------------------------------------------ the official sample vector

def test_official_vector_with_wechatpy():
    assert VECTOR is not None
    crypto = WeChatCrypto(VECTOR["token"], VECTOR["encoding_aes_key"], VECTOR["receive_id"])
    v = VECTOR["verify_url"]
    assert crypto.check_signature(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"]) \
        == "1616140317555161061"
    m = VECTOR["message"]
    plain = crypto.decrypt_message(m["body"], m["msg_signature"], m["timestamp"], m["nonce"])
    msg = flat(plain)
    assert msg["Content"] == "hello" and msg["MsgId"] == "4561255354251345929" and msg["AgentID"] == "218"
    assert msg == m["decrypted"]


def test_official_vector_through_the_routes():
    rec = Recorder()
    ch = make(clock=SAMPLE_TS, dispatch=rec)
    v, m = VECTOR["verify_url"], VECTOR["message"]
    with app_for(ch) as client:
        r = client.get("/wecom/callback", params={k: v[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")})
        assert r.status_code == 200 and r.text == "1616140317555161061"
        r = client.post("/wecom/callback", params={k: m[k] for k in ("msg_signature", "timestamp", "nonce")},
                        content=m["body"])
        assert r.status_code == 200
    assert [(i.channel, i.user, i.chat, i.text) for i in rec.seen] == [("wecom", "mycreate", "mycreate", "hello")]
    reply = open_reply(r.text)
    assert reply["Content"] == "答：hello" and reply["ToUserName"] == "mycreate" and reply["MsgType"] == "text"


# ------------------------------------------------------------------ round trip and refusals

def test_round_trip_passive_reply():
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(text_msg("今天谁值班"))
    with app_for(ch) as client:
        r = client.post("/wecom/callback", params=params, content=body)
    assert r.status_code == 200
    assert rec.seen[0].text == "今天谁值班"
    assert open_reply(r.text)["Content"] == "答：今天谁值班"


def test_forged_signature_is_refused(caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(text_msg())
    params["msg_signature"] = "0" * 40
    v = dict(VECTOR["verify_url"], msg_signature="1" * 40)
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        assert client.post("/wecom/callback", params=params, content=body).status_code == 403
        r = client.get("/wecom/callback", params={k: v[k] for k in ("msg_signature", "nonce", "echostr")}
                       | {"timestamp": str(NOW)})
        assert r.status_code == 403
    assert not rec.seen
    assert "refused 403" in caplog.text


def test_old_timestamp_is_refused(caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(text_msg(), ts=NOW - 301)  # correctly signed, but a replay
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        assert client.post("/wecom/callback", params=params, content=body).status_code == 403
    assert not rec.seen and "replay window" in caplog.text


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                  '<xml><Encrypt>&lol3;</Encrypt></xml>')
XXE = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<xml><Encrypt>&xxe;</Encrypt></xml>')


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, '<!DOCTYPE xml><xml><Encrypt>x</Encrypt></xml>'])
def test_doctype_and_entities_are_refused(body, caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    params, _ = encrypted(text_msg())
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        assert client.post("/wecom/callback", params=params, content=body).status_code == 400
    assert not rec.seen and "unsafe XML refused" in caplog.text


def test_inner_xml_with_entities_is_refused(caplog):
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(XXE)  # signed and encrypted correctly, the plaintext is hostile
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        assert client.post("/wecom/callback", params=params, content=body).status_code == 400
    assert not rec.seen


def test_oversized_body_is_refused(caplog):
    rec = Recorder()
    ch = make(dispatch=rec, max_body=64 * 1024)
    params, body = encrypted(text_msg("长" * 30_000))  # > 64 KB once encrypted
    assert len(body) > 64 * 1024
    with app_for(ch) as client, caplog.at_level(logging.WARNING):
        assert client.post("/wecom/callback", params=params, content=body).status_code == 413
    assert not rec.seen and "refused 413" in caplog.text


def test_same_msgid_is_dispatched_once():
    rec = Recorder()
    ch = make(dispatch=rec)
    params, body = encrypted(text_msg(msg_id="777"))
    with app_for(ch) as client:
        first = client.post("/wecom/callback", params=params, content=body)
        again = client.post("/wecom/callback", params=params, content=body)
    assert len(rec.seen) == 1
    assert open_reply(first.text)["Content"] == "答：你好" and again.text == "success"


def test_slow_dispatch_answers_success_then_pushes():
    gate = threading.Event()
    rec = Recorder(gate)
    with FakeWxApi() as api:
        ch = make(api.url, dispatch=rec, reply_timeout=0.2)
        params, body = encrypted(text_msg("慢问题", user="lisi"))
        with app_for(ch) as client:
            r = client.post("/wecom/callback", params=params, content=body)
            assert r.status_code == 200 and r.text == "success"
            gate.set()
            sends = api.wait_for("/cgi-bin/message/send")
        assert len(sends) == 1
        payload = sends[0]["json"]
        assert payload["touser"] == "lisi" and payload["text"]["content"] == "答：慢问题"
        assert payload["agentid"] == 218 and payload["enable_duplicate_check"] == 1
        assert sends[0]["query"]["access_token"] == "TOKEN1"


def test_image_location_and_event():
    rec = Recorder()
    with FakeWxApi() as api, __import__("tempfile").TemporaryDirectory() as media:
        ch = make(api.url, dispatch=rec, media_dir=media)
        image = text_msg().replace("<MsgType><![CDATA[text]]></MsgType>", "<MsgType><![CDATA[image]]></MsgType>"
                                   "<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[M1]]></MediaId>")
        location = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>"
                    "<MsgType>location</MsgType><Location_X>23.1</Location_X><Location_Y>113.3</Location_Y>"
                    "<Scale>15</Scale><Label>某镇</Label><MsgId>2002</MsgId></xml>")
        event = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>u</FromUserName><CreateTime>2</CreateTime>"
                 "<MsgType>event</MsgType><Event>subscribe</Event></xml>")
        with app_for(ch) as client:
            for xml in (image, location, event):
                params, body = encrypted(xml)
                assert client.post("/wecom/callback", params=params, content=body).status_code == 200
        photo = rec.seen[0].attachments[0]
        assert photo.kind == "photo" and Path(photo.path).read_bytes() == api.media
        assert photo.data["url"] == "http://x/p.jpg"
        loc = rec.seen[1].attachments[0]
        assert loc.kind == "location" and loc.data["lat"] == 23.1 and loc.data["address"] == "某镇"
        assert rec.seen[2].text == "/start"
        assert "/cgi-bin/media/get" in api.paths()


# ------------------------------------------------------------------ app messages and the robot

def test_access_token_is_cached():
    with FakeWxApi() as api:
        ch = make(api.url)

        async def two():
            await ch.push("a", "一", key="k1")
            await ch.push("b", "二", key="k2")
        asyncio.run(two())
        assert api.paths().count("/cgi-bin/gettoken") == 1
        assert api.paths().count("/cgi-bin/message/send") == 2
        assert api.calls[0]["query"] == {"corpid": CORP_ID, "corpsecret": "SECRET"}


def test_expired_token_is_refreshed_once():
    with FakeWxApi() as api:
        api.scripted["/cgi-bin/message/send"] = [(200, {"errcode": 42001, "errmsg": "access_token expired"})]
        ch = make(api.url)
        asyncio.run(ch.push("a", "x", key="k"))
        assert api.paths() == ["/cgi-bin/gettoken", "/cgi-bin/message/send", "/cgi-bin/gettoken",
                               "/cgi-bin/message/send"]


@pytest.mark.parametrize("status,answer,error", [
    (200, {"errcode": 45009, "errmsg": "api freq out of limit"}, RateLimited),
    (200, {"errcode": 45033, "errmsg": "user call limit"}, RateLimited),
    (429, {}, RateLimited),
    (502, {}, TransientError),
    (200, {"errcode": -1, "errmsg": "system busy"}, TransientError),
    (200, {"errcode": 81013, "errmsg": "user invalid"}, PermanentError),
])
def test_send_errors_are_mapped(status, answer, error):
    with FakeWxApi() as api:
        api.scripted["/cgi-bin/message/send"] = [(status, answer)]
        ch = make(api.url)
        with pytest.raises(error):
            asyncio.run(ch.push("a", "x", key="k"))


def test_unreachable_api_is_transient():
    ch = make("http://127.0.0.1:9", http_timeout=1.0)
    with pytest.raises(TransientError):
        asyncio.run(ch.push("a", "x", key="k"))


def test_robot_markdown_is_split_and_errors_mapped():
    with FakeWxApi() as api:
        robot = WeComRobotChannel("KEY", api.url)
        text = "\n".join(f"第{i}行：" + "隐患" * 40 for i in range(60))  # ≈ 15 KB
        asyncio.run(robot.push("安委办工作群", text, key="k"))
        sends = api.wait_for("/cgi-bin/webhook/send", 2)
        assert len(sends) >= 4
        assert all(len(c["json"]["markdown"]["content"].encode()) <= 4096 for c in sends)
        assert "".join(c["json"]["markdown"]["content"] + "\n" for c in sends).rstrip("\n") == text
        assert sends[0]["query"] == {"key": "KEY"} and sends[0]["json"]["msgtype"] == "markdown"
        api.scripted["/cgi-bin/webhook/send"] = [(200, {"errcode": 45009, "errmsg": "freq"})]
        with pytest.raises(RateLimited):
            asyncio.run(robot.push("g", "x", key="k2"))
