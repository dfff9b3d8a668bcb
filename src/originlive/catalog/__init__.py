"""Shops, products, SKUs, images and provenance, with search by text and region."""
