"""Flash offers, orders, reservation of stock, expiry and refunds."""
