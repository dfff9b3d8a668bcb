"""Payments and refunds: a provider interface, the sandbox gateway, signed webhooks."""
