"""The newsbot indexer and retrieval library: articles in, quoted sourced passages out.

Nothing here imports ``bot``: the bot is one client of this library, the CLI another.
"""
