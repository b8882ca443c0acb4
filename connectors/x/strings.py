"""The X connector's UI text, in every UI language (the same keys in each)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "name": "X (Twitter)",
        "cred.consumer_key": "API key (consumer key)",
        "cred.consumer_key.help": "From your app's \"Keys and tokens\" page in the X Developer "
                                  "Console.",
        "cred.consumer_secret": "API key secret (consumer secret)",
        "cred.consumer_secret.help": "Also signs X's webhook deliveries; never shown again.",
        "cred.access_token": "Access token",
        "cred.access_token.help": "The token of the brand account itself, generated with "
                                  "\"Read and write and Direct message\" permission.",
        "cred.access_token_secret": "Access token secret",
        "cred.access_token_secret.help": "Generated together with the access token.",
        "option.poll_interval_s": "Poll interval (seconds)",
        "option.poll_interval_s.help": "How often to ask X for new mentions and DMs. "
                                       "X's own limits pace the reads whatever it is (DMs: 15 "
                                       "per 15 minutes); an empty answer costs nothing.",
        "option.monthly_budget_usd": "Monthly budget (USD)",
        "option.monthly_budget_usd.help": "X charges per post and DM read and per reply; with a "
                                          "budget, polling slows down to stay inside it.",
        "option.signature_template": "Signature",
        "option.signature_template.help": "Added after every reply so the customer sees which "
                                          "agent wrote; {initials}, {name}, {brand} are filled "
                                          "in. Default: \" ^{initials}\".",
        "option.price_post_read_usd": "Price per post read (USD)",
        "option.price_post_read_usd.help": "What X charges for each post it returns (mentions); "
                                           "used for the spend estimate and the budget.",
        "option.price_dm_read_usd": "Price per DM read (USD)",
        "option.price_dm_read_usd.help": "What X charges for each DM event it returns.",
        "option.price_post_usd": "Price per reply posted (USD)",
        "option.price_post_usd.help": "What X charges for each public reply without a link.",
        "option.price_post_with_url_usd": "Price per reply with a link (USD)",
        "option.price_post_with_url_usd.help": "X charges more for a post that contains a URL.",
        "option.price_dm_usd": "Price per DM sent (USD)",
        "option.price_dm_usd.help": "What X charges for each DM the account sends.",
        "mode.polling": "Polling",
        "mode.polling.help": "Switchboard asks X for new mentions and DMs at the interval.",
        "mode.activity": "X Activity API (webhook)",
        "mode.activity.help": "X pushes mentions, replies and DMs to Switchboard as they happen; "
                              "needs a public HTTPS address.",
        "error.invalid_auth": "X refused these keys and tokens.",
        "error.cannot_connect": "Could not reach the X API.",
        "error.unknown": "X answered unexpectedly.",
        "error.activity_setup": "Could not subscribe the account to the X Activity API.",
        "error.credentials_refused": "X refused the account's credentials; an admin must enter "
                                     "new ones.",
        "error.rate_limited": "X asked us to slow down; the reply will be retried.",
        "error.reply_restricted": "X does not allow this account to reply publicly here: the "
                                  "customer did not mention or quote the account in that post. "
                                  "Send the same text as a DM instead.",
        "error.duplicate": "X refused a post identical to one this account already sent; "
                           "change the text.",
        "error.dm_not_allowed": "This customer does not accept DMs from the account.",
        "error.too_long": "The reply is {over} weighted characters too long for X.",
        "error.rejected_too_long": "X refused the reply as too long.",
        "error.reply_target_gone": "The post being answered was deleted or is no longer "
                                   "visible.",
        "error.not_found": "The post or person being answered no longer exists on X.",
        "error.app_permissions": "The X app lacks the permission for this; enable \"Read and "
                                 "write and Direct message\" and regenerate the access token.",
        "error.client_forbidden": "The X developer app is not allowed to use this endpoint.",
        "error.not_authorized": "The account may not see this post (it is protected or "
                                "hidden).",
        "error.bad_request": "X rejected the reply as malformed.",
        "error.forbidden": "X refused the reply.",
        "error.payment_required": "The X developer account has no API credits left.",
        "error.no_recipient": "There is no one to send this DM to.",
        "error.no_reply_target": "There is no customer post to reply to.",
        "error.server": "X had a server error; the reply will be retried.",
        "error.network": "X could not be reached; the reply will be retried.",
        "error.timeout": "X did not answer in time; the reply will be retried.",
        "error.media_unavailable": "X gave no file for this attachment.",
        "error.media_gone": "This file is no longer available on X.",
        "error.media_host_refused": "The attachment's address is not one of X's media hosts, "
                                    "so Switchboard did not fetch it.",
        "error.media_forbidden": "X would not let this account open this file.",
        "error.media_server": "X's media server had an error; try again shortly.",
        "error.media_network": "X's media server could not be reached; try again shortly.",
        "error.media_rate_limited": "X is limiting file downloads; try again in a minute.",
        "notice.spend": "Estimated X API spend this month: ${spent} ({reads} reads, "
                        "{writes} replies).",
        "notice.budget": "Estimated X API spend this month: ${spent} of the ${budget} budget.",
        "notice.budget_exceeded": "This month's X budget of ${budget} is spent (${spent}); "
                                  "polling has slowed to four times a day.",
        "notice.budget_exceeded_activity": "This month's X budget of ${budget} is spent "
                                           "(${spent}); X goes on pushing events, and bills "
                                           "each of them.",
        "notice.budget_slowed": "To stay within the ${budget} monthly budget, Switchboard now "
                                "asks X for new mentions and DMs every {minutes} min.",
        "alternative.dm": "Send as DM instead",
    },
    "zh-CN": {
        "name": "X（Twitter）",
        "cred.consumer_key": "API Key（Consumer Key）",
        "cred.consumer_key.help": "在 X 开发者控制台中应用的“Keys and tokens”页面获取。",
        "cred.consumer_secret": "API Key Secret（Consumer Secret）",
        "cred.consumer_secret.help": "也用于校验 X 推送的 Webhook 签名；保存后不再显示。",
        "cred.access_token": "Access Token",
        "cred.access_token.help": "品牌账号本身的令牌，生成时须选择“读写及私信”权限。",
        "cred.access_token_secret": "Access Token Secret",
        "cred.access_token_secret.help": "与 Access Token 一同生成。",
        "option.poll_interval_s": "轮询间隔（秒）",
        "option.poll_interval_s.help": "多久向 X 查询一次新的提及和私信。无论间隔多短，"
                                       "系统都会按 X 的频率限制自动调节（私信每 15 分钟 15 次）；"
                                       "没有新内容的查询不计费。",
        "option.monthly_budget_usd": "每月预算（美元）",
        "option.monthly_budget_usd.help": "X 按读取的帖子、私信和发出的回复计费；设置预算后，"
                                          "系统会自动放慢轮询，确保不超支。",
        "option.signature_template": "签名",
        "option.signature_template.help": "附在每条回复末尾，让客户知道是哪位客服回复的；可用"
                                          " {initials}、{name}、{brand}。默认：“ ^{initials}”。",
        "option.price_post_read_usd": "每读取一条帖子的价格（美元）",
        "option.price_post_read_usd.help": "X 对返回的每条帖子（提及）收取的费用，用于估算花费和"
                                           "控制预算。",
        "option.price_dm_read_usd": "每读取一条私信的价格（美元）",
        "option.price_dm_read_usd.help": "X 对返回的每条私信事件收取的费用。",
        "option.price_post_usd": "每发一条回复的价格（美元）",
        "option.price_post_usd.help": "X 对每条不含链接的公开回复收取的费用。",
        "option.price_post_with_url_usd": "每发一条带链接回复的价格（美元）",
        "option.price_post_with_url_usd.help": "含链接的帖子，X 收费更高。",
        "option.price_dm_usd": "每发一条私信的价格（美元）",
        "option.price_dm_usd.help": "X 对本账号发出的每条私信收取的费用。",
        "mode.polling": "轮询",
        "mode.polling.help": "Switchboard 按设定的间隔向 X 查询新的提及和私信。",
        "mode.activity": "X Activity API（Webhook）",
        "mode.activity.help": "X 实时推送提及、回复和私信；需要可公开访问的 HTTPS 地址。",
        "error.invalid_auth": "X 拒绝了这组密钥和令牌。",
        "error.cannot_connect": "无法连接 X API。",
        "error.unknown": "X 返回了意外的结果。",
        "error.activity_setup": "未能为该账号订阅 X Activity API。",
        "error.credentials_refused": "X 拒绝了该账号的凭据，需要管理员重新填写。",
        "error.rate_limited": "X 要求放慢请求速度，稍后会自动重试发送。",
        "error.reply_restricted": "X 不允许该账号在这里公开回复：客户在这条帖子中没有提及或"
                                  "引用本账号。请改用私信发送同样的内容。",
        "error.duplicate": "X 拒绝了与本账号之前发过的完全相同的帖子，请修改内容后再发。",
        "error.dm_not_allowed": "该客户不接收本账号的私信。",
        "error.too_long": "回复超出 X 的长度限制 {over} 个加权字符。",
        "error.rejected_too_long": "X 认为这条回复太长，已拒绝。",
        "error.reply_target_gone": "要回复的帖子已被删除或不再可见。",
        "error.not_found": "要回复的帖子或用户在 X 上已不存在。",
        "error.app_permissions": "X 应用缺少相应权限：请开启“读写及私信”权限并重新生成 Access "
                                 "Token。",
        "error.client_forbidden": "该 X 开发者应用无权使用此接口。",
        "error.not_authorized": "本账号无权查看这条帖子（可能受保护或已隐藏）。",
        "error.bad_request": "X 认为这条回复的格式有误，已拒绝。",
        "error.forbidden": "X 拒绝了这条回复。",
        "error.payment_required": "X 开发者账户的 API 额度已用完。",
        "error.no_recipient": "找不到这条私信的接收人。",
        "error.no_reply_target": "没有可回复的客户帖子。",
        "error.server": "X 服务器出错，稍后会自动重试发送。",
        "error.network": "暂时无法连接 X，稍后会自动重试发送。",
        "error.timeout": "X 响应超时，稍后会自动重试发送。",
        "error.media_unavailable": "X 没有提供这个附件的文件。",
        "error.media_gone": "该文件在 X 上已不存在。",
        "error.media_host_refused": "附件地址不属于 X 的媒体服务器，Switchboard 没有去获取。",
        "error.media_forbidden": "X 不允许本账号打开这个文件。",
        "error.media_server": "X 的媒体服务器出错，请稍后再试。",
        "error.media_network": "暂时无法连接 X 的媒体服务器，请稍后再试。",
        "error.media_rate_limited": "X 正在限制文件下载，请过一分钟再试。",
        "notice.spend": "本月 X API 预计花费：${spent}（读取 {reads} 次，回复 {writes} 条）。",
        "notice.budget": "本月 X API 预计花费：${spent}，预算 ${budget}。",
        "notice.budget_exceeded": "本月 X 预算 ${budget} 已用完（已花费 ${spent}），轮询已放慢到"
                                  "每天四次。",
        "notice.budget_exceeded_activity": "本月 X 预算 ${budget} 已用完（已花费 ${spent}）；"
                                           "X 仍会继续推送事件，并逐条计费。",
        "notice.budget_slowed": "为了不超出每月 ${budget} 的预算，系统现在每 {minutes} 分钟向 X "
                                "查询一次新的提及和私信。",
        "alternative.dm": "改为私信发送",
    },
}
