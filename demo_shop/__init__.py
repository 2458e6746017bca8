"""Seeded generator of a realistic demo shop: landing files for the pipeline plus ground truth for tests."""

from demo_shop.generator import ShopSummary, generate_shop

__all__ = ["ShopSummary", "generate_shop"]
