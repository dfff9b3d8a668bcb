"""Room fan-out, presence and rate limits: in-process by default, Redis when configured."""
