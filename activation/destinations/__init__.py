"""Destinations: one class per platform API, all implementing `activation.destinations.base.Destination`."""
