"""Standard answers and service measures: canned replies and their suggestions, automatic
messages, SLA timers, satisfaction surveys, and the counters behind the reports.

Layering: `measures` uses the inbox, team work and replies (automatic messages and surveys go
out through the normal outbox, rendered by the channel's connector, which the web layer hands
in), and knows no platform and no web. Nothing of it is on the acknowledgement path of ingest:
`measures.follower` follows the database's change stream behind it.
"""
