"""Finding things by meaning: the vector index kept in line with SQLite, and its full-text fallback.

`indexing` drains the outbox into the index, owns its lock and lifecycle, and routes searches;
`fulltext` answers from SQLite FTS5 when this process cannot hold the index.
"""
