"""Statements of a shop's or an anchor's money by month, the reconciliation of the book."""
