"""minibtc regtest package."""
