"""Triage: the priority of each unread study, the ranked worklist, and a reading-room simulation.

:mod:`pacs_ai.triage.score` is the one scoring and ordering code: the worklist and the
simulation (:mod:`pacs_ai.triage.simulate`) both call it.
"""
