"""`safeduty people|units|routing`: in-process through click, on a fresh data directory."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import main


@pytest.fixture
def run(tmp_path, lexical_config_file):
    def invoke(*args):
        argv = [*args, "--data-dir", str(tmp_path / "data"), "--config", str(lexical_config_file)]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return invoke


def test_units_and_people_add_and_list(run):
    assert run("units", "add", "--name", "城关街道", "--kind", "街道").exit_code == 0
    result = run("units", "add", "--name", "幸福社区", "--kind", "community", "--parent", "城关街道")
    assert result.exit_code == 0 and "上级 城关街道" in result.output
    result = run("people", "add", "--name", "李网格", "--phone", "13800001111", "--unit", "幸福社区", "--roles", "网格员")
    assert result.exit_code == 0 and "角色：网格员" in result.output
    listed = json.loads(run("people", "list", "--json").output)
    assert listed == [{"id": 1, "name": "李网格", "phone": "13800001111", "unit": "幸福社区", "roles": ["grid"],
                       "active": True, "bound_accounts": 0}]
    tree = run("units", "list").output
    assert "#" in tree and "\n  #" in tree and "幸福社区（社区/村）" in tree


def test_bad_input_is_one_clear_error(run):
    result = run("people", "add", "--name", "某人", "--unit", "不存在的单位")
    assert result.exit_code == 2 and "没有名为「不存在的单位」的单位" in result.output
    result = run("units", "add", "--name", "X", "--kind", "planet")
    assert result.exit_code == 2 and "未知单位类型" in result.output
    result = run("people", "bind-code", "无此人")
    assert result.exit_code == 2 and "没有名为「无此人」的人员" in result.output


def test_bind_code_then_bind_in_chat(run, tmp_path, lexical_config_file):
    run("people", "add", "--name", "张三", "--unit", "区应急管理局", "--roles", "cadre")
    result = run("people", "bind-code", "张三")
    assert result.exit_code == 0
    code = result.output.split("绑定码：")[1][:8]
    chat = CliRunner().invoke(main, ["chat", "--user", "zs", "--data-dir", str(tmp_path / "data"), "--config",
                                     str(lexical_config_file)], input=f"/bind {code}\n/mine\n")
    assert "绑定成功" in chat.output and "我负责的隐患" in chat.output
    assert '"bound_accounts": 1' in run("people", "list", "--json").output


def test_routing_set_and_list(run):
    run("units", "add", "--name", "幸福社区", "--kind", "community")
    run("people", "add", "--name", "李网格", "--unit", "幸福社区", "--roles", "grid")
    assert "燃气 类隐患 → 区应急管理局" in run("routing", "set", "--category", "煤气", "--unit", "区应急管理局").output
    result = run("routing", "set", "--place", "幸福小区", "--unit", "幸福社区", "--grid", "李网格")
    assert result.exit_code == 0 and "网格员 李网格" in result.output
    rows = json.loads(run("routing", "list", "--json").output)
    assert {"kind": "category", "key": "燃气", "unit": "区应急管理局", "grid": ""} in rows
    assert {"kind": "place", "key": "幸福小区", "unit": "幸福社区", "grid": "李网格"} in rows
    assert "未匹配的举报转 区安委办" in run("routing", "list").output


def test_routing_set_needs_exactly_one_rule(run):
    assert run("routing", "set", "--unit", "区应急管理局").exit_code == 2
    result = run("routing", "set", "--category", "火星", "--unit", "区应急管理局")
    assert result.exit_code == 2 and "未知类别" in result.output
