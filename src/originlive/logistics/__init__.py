"""Delivery to the village: the network of hubs, stations and points, parcels and tracking."""
