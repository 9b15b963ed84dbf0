"""Where the index lives: SQLite (articles, passages, keyword index, runs), Chroma vectors, and the one-writer lock."""
