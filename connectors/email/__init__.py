"""The email connector: a support mailbox read over IMAP and answered over SMTP.

This package is `connectors.email`; inside it, `email` always means the standard library's
package (every import here is absolute).
"""
