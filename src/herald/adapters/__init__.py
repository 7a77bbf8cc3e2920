"""Platform adapters: one module per platform, all behind the contract in ``base``."""
