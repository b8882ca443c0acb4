"""The email connector's UI text, in every language the UI has (the same keys in each)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "name": "Email",
        "cred.username": "Username",
        "cred.username.help": "The mailbox login, usually the full address. Leave empty to "
                              "use the address.",
        "cred.password": "Password",
        "cred.password.help": "The mailbox password or an app password (Gmail, Outlook and "
                              "QQ Mail require an app password or authorisation code).",
        "cred.oauth2_token": "OAuth 2.0 access token",
        "cred.oauth2_token.help": "Instead of a password, for providers that require XOAUTH2 "
                                  "(Gmail, Microsoft 365).",
        "cred.oauth2_refresh_token": "OAuth 2.0 refresh token",
        "cred.oauth2_refresh_token.help": "Lets Switchboard renew the access token when it "
                                          "expires.",
        "cred.oauth2_client_secret": "OAuth 2.0 client secret",
        "cred.oauth2_client_secret.help": "The secret of the OAuth client the refresh token "
                                          "was issued to, if it has one.",
        "option.address": "Support address",
        "option.address.help": "The address customers write to; replies are sent from it.",
        "option.display_name_template": "Sender name",
        "option.display_name_template.help": "What customers see as the sender. {name} is the "
                                             "agent's name, {brand} the brand, {title} the "
                                             "agent's title.",
        "option.imap_host": "IMAP server",
        "option.imap_host.help": "For example imap.exmail.qq.com or outlook.office365.com.",
        "option.imap_port": "IMAP port",
        "option.imap_port.help": "Leave empty for the default: 993 with TLS, 143 otherwise.",
        "option.smtp_host": "SMTP server",
        "option.smtp_host.help": "For example smtp.exmail.qq.com or smtp.office365.com.",
        "option.smtp_port": "SMTP port",
        "option.smtp_port.help": "Leave empty for the default: 465 with TLS, 587 with "
                                 "STARTTLS, 25 without encryption.",
        "option.security": "Connection security",
        "option.security.help": "TLS (recommended), STARTTLS, or none — only for a mail "
                                "server on this machine or a test server.",
        "option.security.tls": "TLS",
        "option.security.starttls": "STARTTLS",
        "option.security.none": "None (unencrypted)",
        "option.folder": "Folder",
        "option.folder.help": "The IMAP folder to read customer mail from.",
        "option.ca_file": "CA certificate",
        "option.ca_file.help": "Path to a PEM file, for a mail server whose certificate is "
                               "signed by your own certificate authority.",
        "option.poll_seconds": "Poll interval (seconds)",
        "option.poll_seconds.help": "How often to look for new mail when the server does not "
                                    "support IMAP IDLE.",
        "option.backfill_days": "Import recent mail (days)",
        "option.backfill_days.help": "When the mailbox is first connected, the mail of this "
                                     "many past days is imported. 0 imports only new mail.",
        "option.oauth2_token_url": "OAuth 2.0 token endpoint",
        "option.oauth2_token_url.help": "For example https://oauth2.googleapis.com/token.",
        "option.oauth2_client_id": "OAuth 2.0 client ID",
        "option.oauth2_client_id.help": "The client the refresh token was issued to.",
        "mode.imap": "IMAP",
        "mode.imap.help": "New mail is picked up as it arrives (IMAP IDLE), or by polling "
                          "when the server does not support IDLE.",
        "error.invalid_auth": "The mail server refused the username or password.",
        "error.cannot_connect": "Cannot reach the mail server. Check the server name, the "
                                "port and the security setting.",
        "error.unknown": "The mail server answered in a way Switchboard does not understand.",
        "error.tls_failed": "A secure connection to the mail server could not be made; its "
                            "certificate may not be trusted.",
        "error.folder_not_found": "The IMAP folder cannot be opened. Check its name.",
        "error.missing_option": "A required setting of the mailbox is missing.",
        "error.smtp_unsupported": "The SMTP server does not offer what the account needs "
                                  "(a login, or STARTTLS).",
        "error.recipient_rejected": "The mail server refused the customer's address.",
        "error.sender_rejected": "The mail server does not allow sending from the support "
                                 "address with this login.",
        "error.message_rejected": "The mail server refused the reply.",
        "error.credentials_refused": "The mail server no longer accepts the account's login; "
                                     "an admin must update it.",
        "error.rate_limited": "The mail server is limiting how much we send; the reply will "
                              "be sent later.",
        "error.no_recipient": "This conversation has no customer address to reply to.",
        "error.invalid_address": "An address of this reply is not valid.",
        "error.oauth_refresh_refused": "The OAuth provider refused to renew the access token; "
                                       "an admin must sign in again.",
        "error.bounced": "The reply could not be delivered: {reason}",
        "error.smtp_temporary": "The mail server is temporarily refusing the reply; it will be "
                                "sent again.",
        "error.token_refreshed": "The access token had expired and was renewed; the reply will "
                                 "be sent again.",
        "notice.insecure_connection": "The connection to {host}:{port} is not encrypted. Use "
                                      "no security only for a mail server on this machine.",
        "notice.no_idle": "The IMAP server does not support IDLE: new mail is picked up "
                          "every {seconds} seconds.",
    },
    "zh-CN": {
        "name": "电子邮件",
        "cred.username": "用户名",
        "cred.username.help": "邮箱的登录名，通常是完整的邮箱地址。留空则使用支持邮箱地址。",
        "cred.password": "密码",
        "cred.password.help": "邮箱密码或应用专用密码（Gmail、Outlook 需使用应用专用密码，"
                              "QQ 邮箱需使用授权码）。",
        "cred.oauth2_token": "OAuth 2.0 访问令牌",
        "cred.oauth2_token.help": "用于要求 XOAUTH2 登录的服务商（Gmail、Microsoft 365），"
                                  "可代替密码。",
        "cred.oauth2_refresh_token": "OAuth 2.0 刷新令牌",
        "cred.oauth2_refresh_token.help": "访问令牌过期时，Switchboard 会用它自动续期。",
        "cred.oauth2_client_secret": "OAuth 2.0 客户端密钥",
        "cred.oauth2_client_secret.help": "签发刷新令牌的 OAuth 客户端的密钥（如有）。",
        "option.address": "客服邮箱地址",
        "option.address.help": "客户来信的地址，回复也从这个地址发出。",
        "option.display_name_template": "发件人名称",
        "option.display_name_template.help": "客户看到的发件人名称。{name} 为客服姓名，"
                                             "{brand} 为品牌名，{title} 为客服头衔。",
        "option.imap_host": "IMAP 服务器",
        "option.imap_host.help": "例如 imap.exmail.qq.com 或 outlook.office365.com。",
        "option.imap_port": "IMAP 端口",
        "option.imap_port.help": "留空则使用默认端口：TLS 为 993，其他为 143。",
        "option.smtp_host": "SMTP 服务器",
        "option.smtp_host.help": "例如 smtp.exmail.qq.com 或 smtp.office365.com。",
        "option.smtp_port": "SMTP 端口",
        "option.smtp_port.help": "留空则使用默认端口：TLS 为 465，STARTTLS 为 587，不加密为 25。",
        "option.security": "连接安全",
        "option.security.help": "TLS（推荐）、STARTTLS，或不加密——仅适用于本机邮件服务器"
                                "或测试服务器。",
        "option.security.tls": "TLS",
        "option.security.starttls": "STARTTLS",
        "option.security.none": "不加密",
        "option.folder": "文件夹",
        "option.folder.help": "读取客户来信的 IMAP 文件夹。",
        "option.ca_file": "CA 证书",
        "option.ca_file.help": "PEM 文件路径，用于证书由贵司自有证书颁发机构签发的邮件服务器。",
        "option.poll_seconds": "轮询间隔（秒）",
        "option.poll_seconds.help": "服务器不支持 IMAP IDLE 时，检查新邮件的间隔。",
        "option.backfill_days": "导入近期邮件（天）",
        "option.backfill_days.help": "首次连接邮箱时导入最近这些天的邮件。填 0 则只接收新邮件。",
        "option.oauth2_token_url": "OAuth 2.0 令牌端点",
        "option.oauth2_token_url.help": "例如 https://oauth2.googleapis.com/token。",
        "option.oauth2_client_id": "OAuth 2.0 客户端 ID",
        "option.oauth2_client_id.help": "签发刷新令牌的 OAuth 客户端。",
        "mode.imap": "IMAP",
        "mode.imap.help": "新邮件到达时即时收取（IMAP IDLE）；服务器不支持 IDLE 时定时轮询。",
        "error.invalid_auth": "邮件服务器拒绝了用户名或密码。",
        "error.cannot_connect": "无法连接邮件服务器，请检查服务器地址、端口和连接安全设置。",
        "error.unknown": "邮件服务器返回了 Switchboard 无法识别的应答。",
        "error.tls_failed": "无法与邮件服务器建立安全连接，其证书可能不受信任。",
        "error.folder_not_found": "无法打开该 IMAP 文件夹，请检查文件夹名称。",
        "error.missing_option": "邮箱缺少必填的设置项。",
        "error.smtp_unsupported": "SMTP 服务器不支持该账号所需的功能（登录或 STARTTLS）。",
        "error.recipient_rejected": "邮件服务器拒收了客户的邮箱地址。",
        "error.sender_rejected": "邮件服务器不允许以此登录身份从客服邮箱地址发信。",
        "error.message_rejected": "邮件服务器拒收了这封回复。",
        "error.credentials_refused": "邮件服务器已不再接受该账号的登录信息，需由管理员更新。",
        "error.rate_limited": "邮件服务器正在限制发信频率，回复将稍后发送。",
        "error.no_recipient": "此会话没有可回复的客户邮箱地址。",
        "error.invalid_address": "这封回复中有无效的邮箱地址。",
        "error.oauth_refresh_refused": "OAuth 服务商拒绝续期访问令牌，需由管理员重新登录授权。",
        "error.bounced": "回复未能送达：{reason}",
        "error.smtp_temporary": "邮件服务器暂时拒收这封回复，稍后会重新发送。",
        "error.token_refreshed": "访问令牌已过期并已自动续期，回复将重新发送。",
        "notice.insecure_connection": "与 {host}:{port} 的连接未加密。仅在邮件服务器位于本机时"
                                      "才可不加密。",
        "notice.no_idle": "该 IMAP 服务器不支持 IDLE，新邮件每 {seconds} 秒检查一次。",
    },
}
