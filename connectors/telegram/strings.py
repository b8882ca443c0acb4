"""Telegram's words in every UI language: its name, credential labels and help, its error
sentences. The host merges them into the UI catalogues under `platform.telegram.` (see
web/i18n.py), so nothing outside this package says "Telegram" or "BotFather".

Keys: `name`, `cred.<field>[.help]`, `mode.<mode>.help` (the labels are the host's),
`error.<code>` (the codes of errors.py `classify` and of the connector's own
`PermanentError`s; generic ones such as `timeout` and `network` are the host's),
`notice.<key>` (its `Notice`s), `api_base_url` (the default, shown as the field's
placeholder). en and zh-CN must have the same keys (a test).
"""

from __future__ import annotations

from collections.abc import Mapping

_EN: dict[str, str] = {
    "name": "Telegram",
    "cred.bot_token": "Bot token",
    "cred.bot_token.help": "The token @BotFather gave you, like 123456:ABC-DEF…",
    "mode.webhook": "Webhook",
    "mode.polling": "Long polling",
    "mode.webhook.help": "Telegram calls this server's public URL with each message; it must "
                         "be reachable over HTTPS.",
    "mode.polling.help": "This server asks Telegram for new messages; it works behind a "
                         "firewall, with no public URL.",
    "api_base_url": "https://api.telegram.org",
    "error.blocked": "The customer blocked the bot.",
    "error.kicked": "The bot was removed from this group.",
    "error.chat_not_found": "Telegram no longer knows this chat (it was deleted or the bot was "
                            "removed).",
    "error.user_deactivated": "The customer's Telegram account was deleted.",
    "error.no_rights": "The bot is not allowed to write in this group.",
    "error.too_long": "The reply is longer than Telegram allows (4096 characters).",
    "error.chat_migrated": "The group was upgraded to a supergroup; reply in the new "
                           "conversation.",
    "error.forbidden": "Telegram does not let the bot write here.",
    "error.bad_request": "Telegram refused the reply as malformed.",
    "error.invalid_token": "Telegram refused the bot token; an admin must update the channel "
                           "account. Replies wait until then.",
    "error.no_chat": "This conversation has no Telegram chat to answer in.",
    "error.no_file": "This attachment has no file on Telegram.",
    "error.webhook_set": "A webhook is set for this bot, so Telegram refuses polling; save the "
                         "account again to remove it.",
    "error.telegram": "Telegram reported an error; it will be retried.",
    "notice.polling": "This account polls Telegram for messages; no webhook URL is needed.",
}

_ZH: dict[str, str] = {
    "name": "Telegram",
    "cred.bot_token": "机器人令牌",
    "cred.bot_token.help": "@BotFather 提供的令牌，形如 123456:ABC-DEF…",
    "mode.webhook": "Webhook 推送",
    "mode.polling": "长轮询",
    "mode.webhook.help": "Telegram 把每条消息推送到本服务器的公网地址，该地址须能通过 HTTPS 访问。",
    "mode.polling.help": "由本服务器向 Telegram 拉取新消息；无需公网地址，防火墙后也可使用。",
    "api_base_url": "https://api.telegram.org",
    "error.blocked": "客户已屏蔽机器人。",
    "error.kicked": "机器人已被移出此群组。",
    "error.chat_not_found": "Telegram 找不到此聊天（可能已被删除，或机器人已被移除）。",
    "error.user_deactivated": "客户的 Telegram 账号已注销。",
    "error.no_rights": "机器人没有在此群组发言的权限。",
    "error.too_long": "回复超出了 Telegram 允许的长度（4096 个字符）。",
    "error.chat_migrated": "此群组已升级为超级群组，请在新的会话中回复。",
    "error.forbidden": "Telegram 不允许机器人在此发言。",
    "error.bad_request": "Telegram 认为这条回复格式有误，拒绝发送。",
    "error.invalid_token": "Telegram 拒绝了机器人令牌，需要管理员更新渠道账号；"
                           "在此之前回复会暂缓发送。",
    "error.no_chat": "此会话没有可回复的 Telegram 聊天。",
    "error.no_file": "此附件在 Telegram 上没有文件。",
    "error.webhook_set": "此机器人设置了 Webhook，Telegram 因此拒绝轮询；请重新保存账号以移除它。",
    "error.telegram": "Telegram 返回了错误，稍后会自动重试。",
    "notice.polling": "此账号通过轮询从 Telegram 获取消息，无需 Webhook 地址。",
}

# Replies that failed before the connector had its own codes carry a code made from Telegram's
# English error text; they stay in the database, so their sentences stay translatable.
LEGACY_CODES: Mapping[str, str] = {
    "bot_was_blocked_by_the_user": "blocked",
    "bot_was_kicked": "kicked",
    "user_is_deactivated": "user_deactivated",
    "not_enough_rights": "no_rights",
    "message_is_too_long": "too_long",
}


def _with_legacy(strings: dict[str, str]) -> dict[str, str]:
    return strings | {f"error.{old}": strings[f"error.{new}"]
                      for old, new in LEGACY_CODES.items()}


STRINGS: Mapping[str, Mapping[str, str]] = {"en": _with_legacy(_EN), "zh-CN": _with_legacy(_ZH)}
