"""python-telegram-bot errors → the contract's typed send errors, with our own codes.

Telegram's error answers carry an HTTP-like `error_code` and a `description` sentence but no
machine code beyond it, so the permanent cases are recognised by the description's documented
phrases (https://core.telegram.org/bots/api#making-requests) and given codes of our own; the
sentence the agent reads is ours (connectors/telegram/strings.py), never Telegram's.
Order matters: BadRequest and TimedOut are subclasses of NetworkError, so they are checked before
it; a blanket `except NetworkError` would retry permanent errors.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from telegram import error as tg

from inbox.models import (
    CredentialsRefused,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)

# documented phrase in Telegram's description → (our code, the sentence in English)
_PERMANENT: tuple[tuple[str, str, str], ...] = (
    ("bot was blocked by the user", "blocked", "The customer blocked the bot."),
    ("chat not found", "chat_not_found",
     "Telegram no longer knows this chat (it was deleted or the bot was removed)."),
    ("user is deactivated", "user_deactivated", "The customer's Telegram account was deleted."),
    ("bot was kicked", "kicked", "The bot was removed from this group."),
    ("not enough rights", "no_rights", "The bot is not allowed to write in this group."),
    ("message is too long", "too_long", "The reply is longer than Telegram allows."),
)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def classify(exc: Exception) -> DeliveryError:
    if isinstance(exc, tg.RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns that this becomes a timedelta
            warnings.simplefilter("ignore")
            retry_after = _seconds(exc.retry_after)
        return RateLimited(retry_after, "Telegram asked us to slow down.")
    if isinstance(exc, tg.InvalidToken):
        return CredentialsRefused("Telegram refused the bot token; an admin must update the "
                                  "channel account.", code="invalid_token")
    if isinstance(exc, tg.Forbidden | tg.BadRequest | tg.ChatMigrated):
        text = str(exc).lower()
        for needle, code, human in _PERMANENT:
            if needle in text:
                return PermanentError(human, code=code)
        if isinstance(exc, tg.ChatMigrated):
            return PermanentError("The group was upgraded to a supergroup; reply in the new "
                                  "conversation.", code="chat_migrated")
        if isinstance(exc, tg.Forbidden):
            return PermanentError("Telegram does not let the bot write here.", code="forbidden")
        return PermanentError("Telegram refused the reply as malformed.", code="bad_request")
    if isinstance(exc, tg.TimedOut):
        return TransientError("Telegram did not answer in time.", code="timeout")
    if isinstance(exc, tg.NetworkError):
        return TransientError("Telegram could not be reached.", code="network")
    if isinstance(exc, tg.TelegramError):
        return TransientError("Telegram answered with an error.", code="telegram")
    return TransientError("Unexpected error while talking to Telegram.", code="unknown")
