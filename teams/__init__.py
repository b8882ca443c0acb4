"""Team work: teams (skill groups), routing rules, fair automatic assignment with queues, the
name policy (进线名称), labels, notes and search.

Layering: `teams` reads and writes the inbox's database and knows no platform and no web; it
imports `inbox` only. `replies` and `web` import it. New conversations reach it off the
acknowledgement path of ingest: `teams.router` follows new conversations on the process's
change feed (inbox/changes.py).
"""
