"""Offline assets: tiny models and tokenizers built in-process (never downloaded) for tests and tiny configs."""
