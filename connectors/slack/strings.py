"""The Slack connector's UI text, in every UI language (same keys in each)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "name": "Slack",
        "cred.bot_token": "Bot token",
        "cred.bot_token.help": "The Bot User OAuth Token of your Slack app (starts with xoxb-), "
                               "under OAuth & Permissions.",
        "cred.signing_secret": "Signing secret",
        "cred.signing_secret.help": "Basic Information → App Credentials → Signing Secret. "
                                    "Used to check that events really come from Slack.",
        "cred.app_token": "App-level token",
        "cred.app_token.help": "Only for Socket Mode: an app-level token (starts with xapp-) "
                               "with the connections:write scope, under Basic Information.",
        "option.channel_as_conversation": "One conversation per channel",
        "option.channel_as_conversation.help": "Off: every thread in a channel is its own "
                                               "conversation. On: the whole channel is one "
                                               "conversation.",
        "option.accept_bot_messages": "Accept messages from other bots",
        "option.accept_bot_messages.help": "Store messages that other apps and bots post in "
                                           "the conversations this app is in.",
        "mode.events": "Events API (HTTP)",
        "mode.events.help": "Slack sends each event to this server's public Events URL.",
        "mode.socket": "Socket Mode",
        "mode.socket.help": "This server connects out to Slack over a websocket; no public URL "
                            "is needed. Requires the app-level token.",
        "error.invalid_auth": "Slack did not accept the bot token. Check that it is the app's "
                              "current xoxb- token.",
        "error.not_authed": "No bot token was sent to Slack.",
        "error.token_revoked": "The bot token was revoked (the app was uninstalled or the token "
                               "rotated). Reinstall the app and enter the new token.",
        "error.token_expired": "The bot token has expired. Enter a fresh token.",
        "error.account_inactive": "The Slack workspace or the app's bot user has been "
                                  "deactivated.",
        "error.invalid_app_token": "Slack did not accept the app-level token. It must start "
                                   "with xapp- and have the connections:write scope.",
        "error.cannot_connect": "Could not reach Slack. Check the network and the API address.",
        "error.unknown": "Slack answered in an unexpected way: {detail}",
        "error.rate_limited": "Slack asked us to slow down; the reply is sent again shortly.",
        "error.channel_not_found": "Slack no longer knows this conversation (it was deleted, "
                                   "or the app cannot see it).",
        "error.not_in_channel": "The app is not a member of this channel. Invite it with "
                                "/invite, then send again.",
        "error.is_archived": "This channel has been archived; replies cannot be posted there.",
        "error.msg_too_long": "The reply is longer than Slack accepts.",
        "error.no_text": "The reply is empty.",
        "error.missing_scope": "The Slack app lacks a permission this needs: {detail}. Add the "
                               "scope and reinstall the app.",
        "error.restricted_action": "The workspace's settings do not allow the app to post here.",
        "error.slack_error": "Slack refused the reply ({detail}).",
        "error.slack_unavailable": "Slack is having trouble right now; the reply is sent "
                                   "again shortly.",
        "error.network": "The connection to Slack failed; the reply is sent again shortly.",
        "error.file_unavailable": "Slack did not hand out this file (it was deleted, or the app "
                                  "lacks the files:read scope).",
        "error.file_host_refused": "This file is not hosted by Slack, so the bot token is not "
                                   "sent to fetch it.",
        "error.unexpected": "Sending to Slack failed unexpectedly; the reply is sent again "
                            "shortly.",
        "notice.no_customize_scope": "The app lacks the chat:write.customize scope: replies "
                                     "will carry a signature line instead of the agent's name "
                                     "as sender. Add the scope and reinstall the app to fix "
                                     "this.",
        "notice.socket_mode": "Socket Mode: no public URL needed.",
        "notice.events_url": "Paste this Request URL into the Slack app's Event Subscriptions: "
                             "{url}",
    },
    "zh-CN": {
        "name": "Slack",
        "cred.bot_token": "Bot 令牌",
        "cred.bot_token.help": "Slack 应用的 Bot User OAuth Token（以 xoxb- 开头），"
                               "位于 OAuth & Permissions 页面。",
        "cred.signing_secret": "签名密钥",
        "cred.signing_secret.help": "Basic Information → App Credentials → Signing Secret，"
                                    "用于确认事件确实来自 Slack。",
        "cred.app_token": "应用级令牌",
        "cred.app_token.help": "仅 Socket Mode 需要：具有 connections:write 权限的应用级令牌"
                               "（以 xapp- 开头），位于 Basic Information 页面。",
        "option.channel_as_conversation": "每个频道作为一个会话",
        "option.channel_as_conversation.help": "关闭：频道中的每个消息串各自成为一个会话；"
                                               "开启：整个频道合并为一个会话。",
        "option.accept_bot_messages": "接收其他机器人的消息",
        "option.accept_bot_messages.help": "保存其他应用或机器人在本应用所在会话中发送的消息。",
        "mode.events": "Events API（HTTP 推送）",
        "mode.events.help": "Slack 将每个事件推送到本服务器的公网 Events 地址。",
        "mode.socket": "Socket Mode",
        "mode.socket.help": "由本服务器通过 WebSocket 主动连接 Slack，无需公网地址；"
                            "需要填写应用级令牌。",
        "error.invalid_auth": "Slack 未接受该 Bot 令牌，请确认填写的是应用当前的 xoxb- 令牌。",
        "error.not_authed": "未向 Slack 提供 Bot 令牌。",
        "error.token_revoked": "Bot 令牌已被撤销（应用被卸载或令牌已轮换），"
                               "请重新安装应用并填写新令牌。",
        "error.token_expired": "Bot 令牌已过期，请填写新的令牌。",
        "error.account_inactive": "该 Slack 工作区或应用的机器人用户已被停用。",
        "error.invalid_app_token": "Slack 未接受该应用级令牌。令牌须以 xapp- 开头，"
                                   "并具有 connections:write 权限。",
        "error.cannot_connect": "无法连接 Slack，请检查网络和 API 地址。",
        "error.unknown": "Slack 返回了意外的结果：{detail}",
        "error.rate_limited": "Slack 要求降低发送频率，回复将稍后自动重发。",
        "error.channel_not_found": "Slack 上已找不到该会话（可能已被删除，或应用无权访问）。",
        "error.not_in_channel": "应用不在该频道中。请先用 /invite 邀请应用加入，再重新发送。",
        "error.is_archived": "该频道已归档，无法在其中发送回复。",
        "error.msg_too_long": "回复超出了 Slack 允许的长度。",
        "error.no_text": "回复内容为空。",
        "error.missing_scope": "Slack 应用缺少所需权限：{detail}。请添加该权限后重新安装应用。",
        "error.restricted_action": "工作区设置不允许应用在此处发送消息。",
        "error.slack_error": "Slack 拒绝了这条回复（{detail}）。",
        "error.slack_unavailable": "Slack 暂时出现故障，回复将稍后自动重发。",
        "error.network": "与 Slack 的连接失败，回复将稍后自动重发。",
        "error.file_unavailable": "Slack 未能提供该文件（文件可能已删除，"
                                  "或应用缺少 files:read 权限）。",
        "error.file_host_refused": "该文件并非托管在 Slack 上，因此不会携带 Bot 令牌去下载。",
        "error.unexpected": "发送到 Slack 时出现意外错误，回复将稍后自动重发。",
        "notice.no_customize_scope": "应用缺少 chat:write.customize 权限：回复将以签名行"
                                     "注明客服姓名，而不是以客服的名字作为发送者显示。"
                                     "添加该权限并重新安装应用即可解决。",
        "notice.socket_mode": "Socket Mode：无需公网地址。",
        "notice.events_url": "请将此请求地址填入 Slack 应用的 Event Subscriptions：{url}",
    },
}
