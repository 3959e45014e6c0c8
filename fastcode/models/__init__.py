"""Talking to OpenAI-compatible endpoints: `client` (streamed calls with timing, usage and cache fields), `wire`
(stdlib helpers shared with the fast path), `messages` (chat messages), `warmup_request` (the `max_tokens: 1`
request that warms a prefix), `cache_warming` (which endpoints a run warms, and when) and `faststart` (the first
request on the wire before anything heavy is imported).

May import: `fastcode.core`.
"""
