"""`safeduty serve`: the one server process (channels, scheduler, senders, webhooks, /healthz)."""
from __future__ import annotations

import asyncio

import click

from bot.cli import _services, common_options, main


@main.command()
@click.option("--host", default=None, help="监听地址（默认 config.yaml 中 channels.server.host）")
@click.option("--port", default=None, type=int, help="监听端口（默认 channels.server.port）")
@common_options
def serve(host, port, config, data_dir):
    """启动服务：已启用的聊天渠道、定时推送、推送发送器、Webhook、/healthz 和本地网页聊天。"""
    from bot.serve import serve as run_server

    services = _services(config, data_dir)
    try:
        import uvloop  # a faster event loop for the webhooks where it exists (not on Windows)

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(run_server(services, host=host, port=port, echo=click.echo))
    except KeyboardInterrupt:
        click.echo("已停止。")
