"""The request path: request → online features → query tower → index → ranker → answer."""
