"""Whole-site crawls: persisted jobs, discovery (sitemaps, llms.txt), robots.txt, scope, politeness."""
