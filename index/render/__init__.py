"""Answers as text: Telegram HTML and plain renderers, and their strings in both languages."""
