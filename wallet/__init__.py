"""minibtc wallet package."""
