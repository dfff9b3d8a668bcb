"""Upstream collection: a co-operative's produce from the growers at village points to the
county hub, weighed and graded at the point, received at the hub, differences flagged."""
