"""X (Twitter) connector: mentions, replies and DMs through tweepy's AsyncClient."""
