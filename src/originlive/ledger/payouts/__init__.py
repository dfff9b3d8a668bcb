"""Payouts: available money sent to its holder through a payout provider."""
