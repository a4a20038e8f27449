"""minibtc consensus package."""
