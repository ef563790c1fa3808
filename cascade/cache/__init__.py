"""The response cache: keys (:mod:`.keys`), stores (:mod:`.stores`), embeddings for semantic matching
(:mod:`.embeddings`), the cache a Router consults (:mod:`.layer`), the answers it replays
(:mod:`.replies`) and the cache report of ``cascade replay --traces`` (:mod:`.report`).
Importing this package opens nothing and imports neither sqlite3, redis nor litellm."""
