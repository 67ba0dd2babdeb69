"""Writes of the arena: `battles` (pairs, start, reveal, daily cap) and `turns` (messages,
streamed replies, votes)."""
