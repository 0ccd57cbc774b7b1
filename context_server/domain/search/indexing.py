"""`Indexer`: keeping the Chroma index in step with SQLite, and searching it (or the vectors stored in SQLite
when we cannot: `domain/search/stored.py`, the same ranking).

SQLite is the truth; the index is derived and can always be rebuilt from it. `Indexer` is one object over
one store, one embedder and (when this process holds it) one `VectorIndex`, put together from a class per
job, each in its own module:

- `outbox.py`: `enqueue` (inside the writer's transaction) and `drain` (to Chroma), bulk `index_embedded`;
- `lifecycle.py`: `take_index`, `maintain`, `check_model`, `repair_if_damaged`, `rebuild`, `close`;
- `copies.py`: when the in-process vector copies (`adapters/vector_cache.py`) are loaded;
- `routing.py`: `search` - Chroma, else the stored vectors, else FTS5 keywords;
- `report.py`: `status` and `health`, for `doctor`;
- `state.py`: the fields they share and the `index_meta` records.
"""

from __future__ import annotations

from context_server.domain.search.lifecycle import Progress
from context_server.domain.search.report import IndexReport
from context_server.domain.search.routing import SearchRouting
from context_server.domain.search.state import INDEX_LAYOUT

__all__ = ["INDEX_LAYOUT", "Indexer", "Progress"]


class Indexer(SearchRouting, IndexReport):
    """Outbox, drain, rebuild and search over a `Store`, an `Embedder` and (when ours) a `VectorIndex`."""
