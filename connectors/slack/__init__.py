"""Slack: Events API and Socket Mode in, threaded replies out under the agent's name."""
