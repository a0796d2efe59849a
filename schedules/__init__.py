"""Scheduled pushes: holiday calendar, duty rosters, reminders, rectification nudges and digests.

Not built yet (issue 4); the package exists so the layout in DESIGN.md is complete.
"""
