"""A reply to one of the bot's answers continues that answer instead of starting over.

"e poi?" sent as a reply means "more of the same"; other words sent as a reply refine the
question they reply to ("e a Milano?"). The answer being replied to is found through the
page id its buttons carry, so nothing new has to be stored per message.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardMarkup, Message

# Whole messages that ask for more of the same, in Italian and English.
_MORE = re.compile(
    r"^\W*(e\s+poi|e\s+dopo|poi|dopo|altro|altri|altre|ancora|avanti|continua|di\s+più"
    r"|dimmi\s+di\s+più|altro\s+ancora|e\s+altro|ce\s+n['’]?è\s+altr[oie]|più"
    r"|more|and\s+then|then|next|go\s+on|continue|tell\s+me\s+more|anything\s+else"
    r"|what\s+else|keep\s+going)\W*$",
    re.IGNORECASE,
)


def asks_for_more(text: str) -> bool:
    return bool(_MORE.match(" ".join(text.split())))


def answered_page(replied: Message | None, bot_id: int) -> str | None:
    """The page id of the bot's answer ``replied`` is, or None when it is not one."""
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return None
    markup = replied.reply_markup
    if not isinstance(markup, InlineKeyboardMarkup):
        return None
    for row in markup.inline_keyboard:
        for button in row:
            data = button.callback_data
            if isinstance(data, str) and data[:2] in ("m:", "f:"):
                return data[2:].split(":", 1)[0] or None
    return None


def refined(question: str, words: str) -> str:
    """The earlier question narrowed by the reply's words."""
    return f"{question} {' '.join(words.split())}".strip()
