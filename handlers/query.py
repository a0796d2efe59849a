"""(Being built: issue 3.)"""
from __future__ import annotations

COMMANDS: dict = {}
