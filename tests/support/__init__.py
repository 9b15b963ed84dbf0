"""What tests share besides fixtures: the fake Bot API, the feed server, test corpora and settings.

Fixtures stay in ``tests/conftest.py``; everything a test imports lives here.
"""
