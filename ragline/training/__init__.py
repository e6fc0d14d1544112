"""Offline training: the cross-encoder reranker `ragline reranker train` makes."""
