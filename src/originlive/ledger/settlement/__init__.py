"""Settlement: where an order's money goes, and when it may be paid out."""
