"""What the hostile-webhook tests need of a platform (tests/test_chaos_fuzz.py): its kit's
`webhook_target(client, admin_headers, stack)` creates an account that takes webhooks (against
the platform's sandbox, started on `stack`) and says where to post and how to sign a body; a
platform without webhooks (email) returns None."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class WebhookTarget:
    path: str
    sign: Callable[[bytes], dict[str, str]]
    account_id: str
