"""News digests: the period's articles grouped into stories, ranked, rendered."""
