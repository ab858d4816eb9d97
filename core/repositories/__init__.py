"""SQL only: queries and writes on one model each. Services own the transactions."""
