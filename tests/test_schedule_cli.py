"""`safeduty schedule preview`: lists the pushes of a window without sending anything."""
from __future__ import annotations

import json
from datetime import date, datetime

from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.storage.db import make_engine, session_factory, upgrade
from bot.storage.models import Outbox
from tests.schedule_world import DUTY_GROUP, district, hazard, shift


def test_preview_json_lines(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "knowledge:\n  embedding:\n    provider: none\n"
        f"schedules:\n  duty_groups: [{DUTY_GROUP}]\n  office_groups: [安委办工作群]\n", encoding="utf-8")
    engine = make_engine(f"sqlite:///{data / 'safeduty.db'}")
    upgrade(engine)
    with session_factory(engine)() as s:
        d = district(s)
        shift(s, date(2026, 10, 1), d.leader, role="leader")
        shift(s, date(2026, 10, 1), d.staff)
        hazard(s, "YH-20260901-0001", date(2026, 9, 30), d.owner, d.town)
        staff_id, owner_id = d.staff.id, d.owner.id
        s.commit()

    def run(*args):
        argv = ["schedule", "preview", *args, "--data-dir", str(data), "--config", str(config_file)]
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    result = run("--from", "2026-09-27", "--to", "2026-10-01", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert records and all({"time", "recipient", "kind", "key", "text"} <= set(r) for r in records)
    times = [datetime.fromisoformat(r["time"]) for r in records]
    assert times == sorted(times) and times[0] >= datetime(2026, 9, 27) and times[-1] <= datetime(2026, 10, 2)
    keys = {r["key"]: r for r in records}
    assert keys[f"duty-eve:2026-10-01:person:{staff_id}"]["recipient"] == f"person:{staff_id}"
    assert keys[f"holiday-eve:2026-10-01:{DUTY_GROUP}"]["time"] == "2026-09-28T08:00:00"
    assert "nudge:YH-20260901-0001:2026-09-30:T-0" in keys and f"nudge-overdue:person:{owner_id}:2026-10-01" in keys

    text = run("--from", "2026-09-27", "--to", "2026-10-01")
    assert text.exit_code == 0 and "仅预览，未发送" in text.output and "节前安全提醒" in text.output
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Outbox)) == 0  # nothing sent or queued

    bad = run("--from", "10月1日", "--to", "2026-10-01")
    assert bad.exit_code == 2 and "--from 应为日期" in bad.output
    engine.dispose()
