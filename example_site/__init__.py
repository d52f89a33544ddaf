"""Stadtwerke Musterstadt: an example website whose pages carry real vendor snippets."""
