"""Real-time segments and activation topics for marketing automation.

Keeps live audiences over unified profiles and publishes every entry and exit to Kafka.
"""
