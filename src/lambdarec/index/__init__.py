"""Item embeddings in Milvus: one collection per model version, reached through an alias.

``build_collection`` writes a model version's item embeddings into
``item_embeddings_v<version>``; ``swap_alias`` points :data:`lambdarec.names.ITEM_EMBEDDINGS_ALIAS`
at it (Milvus switches an alias atomically: a query sees the old or the new collection,
never a mix). Serving always queries the alias.
"""
