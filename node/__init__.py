"""minibtc node package."""
