"""The Telegram side of newsbot: a python-telegram-bot Application over the ``index`` library."""
