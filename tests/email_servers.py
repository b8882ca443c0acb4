"""Real mail servers for the email connector's tests: Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot (connectors/email/dovecot.py) is started once per test session; each test makes its
own user (`dovecot.new_user()`, password `PASSWORD`), so each test has its own mailbox.

Import the fixtures from this module in a test module (`from tests.email_servers import
dovecot, smtp_server  # noqa: F401`). They would belong in tests/conftest.py once more than
the email tests need them.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.email.dovecot import (
    APT_PACKAGE,
    PASSWORD,
    Dovecot,
    find_binary,
    free_port,
    start_dovecot,
    stop_dovecot,
)
from connectors.email.sandbox_smtp import SmtpSandbox

__all__ = ["PASSWORD", "Dovecot", "account_options", "dovecot", "free_port", "smtp_server"]


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if find_binary() is None:
        pytest.skip(f"Dovecot is not installed (no `dovecot` binary): `apt-get install -y "
                    f"{APT_PACKAGE}`, as `make system` does; CI has it")
    server = start_dovecot(Path(tempfile.mkdtemp(prefix="sb-dovecot-")))
    try:
        yield server
    finally:
        stop_dovecot(server)


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpSandbox]:
    server = SmtpSandbox(password=PASSWORD)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def account_options(dovecot: Dovecot | None, smtp: SmtpSandbox | None, user: str,
                    **extra: Any) -> dict[str, Any]:
    return {"address": "support@acme.example", "security": "none",
            "imap_host": dovecot.host if dovecot else "127.0.0.1",
            "imap_port": dovecot.port if dovecot else free_port(),
            "smtp_host": "127.0.0.1", "smtp_port": smtp.port if smtp else free_port(),
            "display_name_template": "{name} · {brand}", **extra}
