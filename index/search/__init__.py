"""Questions out: parsing, hybrid retrieval and fusion, the in-memory copy, quotes."""
