"""The bot's own words for answering, commands, /stats, /reindex and /forgetme, in Italian
and English: data only, read through :func:`bot.texts.t`."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "<b>Hello! I answer questions about a news archive with the passages of real "
            "articles that answer them</b>, quoted word for word, with title, outlet, date "
            "and link. I never write text of my own."
        ),
        "corpus": (
            "I know <b>{articles}</b> articles ({chunks} passages) in {languages}{range}."
        ),
        "corpus_range": ", published from {first} to {last}",
        "corpus_empty": "My archive is empty at the moment.",
        "examples": "Try asking:",
        "how_private": "Here, just write your question.",
        "how_groups": "In groups: <code>/ask your question</code>, mention me, or reply to me.",
        "how_inline": "In any chat: type <code>@{bot} your question</code> and pick a passage.",
        "help": (
            "<b>How to ask</b>\n"
            "Write a question in your own words, in Italian or English. I reply with the "
            "passages that answer it; <i>More</i> shows the next ones, 👍/👎 tell me if they "
            "helped.\n\n"
            "<b>Filters</b> (optional, anywhere in the question)\n"
            "• <code>source:reuters</code> — only that outlet\n"
            "• <code>lang:it</code> — only articles in that language\n"
            "• <code>after:2025-12-01</code>, <code>before:2025-11</code> — publication dates\n"
            "• natural dates also work: <i>last week</i>, <i>in March 2024</i>, "
            "<i>yesterday</i>"
        ),
        "ask_usage": "Write the question after the command, e.g. <code>/ask {example}</code>",
        "mention_usage": "Ask me something after the mention, e.g. <code>@{bot} {example}</code>",
        "rate_limited": (
            "You are asking faster than I can keep up with 🙂 Please wait {seconds} s and ask "
            "again."
        ),
        "error": "Sorry, something went wrong while answering. Please try again in a moment.",
        "button_more": "More ▸",
        "no_more": "No more passages for this question.",
        "page_gone": "This answer is too old to continue: please ask again.",
        "more_shown": "The next passages are already below.",
        "thanks_up": "Thanks! Glad it helped.",
        "thanks_down": "Thanks, noted: I'll try to do better.",
        "admin_only": "Sorry, this command is for the bot's administrators.",
        "reindex_usage": "Usage: <code>/reindex all</code> or <code>/reindex SOURCE</code>. {sources}",
        "reindex_sources": "Configured sources: {names}.",
        "reindex_no_sources": "No sources are configured: <code>all</code> re-reads the built-in sample.",
        "reindex_unknown": "Unknown source <code>{name}</code>. {sources}",
        "reindex_busy": "A reindex is already running; I'll post its summary when it ends.",
        "reindex_starting": "Reindexing <b>{target}</b>: starting…",
        "reindex_loading": "Reindexing <b>{target}</b>: reading and cleaning articles… ({elapsed})",
        "reindex_progress": (
            "Reindexing <b>{target}</b>\n"
            "articles {done}/{total} · {rate:.1f} passages/s · ETA {eta}"
        ),
        "reindex_pruning": "Reindexing <b>{target}</b>: removing articles no longer present…",
        "reindex_done": (
            "Reindex of <b>{target}</b> finished in {seconds:.1f} s\n"
            "added {added} · updated {updated} · unchanged {unchanged} · removed {removed} · "
            "failed {failed}"
        ),
        "reindex_failures": "First failures:",
        "reindex_failed": "Reindex of <b>{target}</b> failed: {reason}",
        "reindex_nothing": "Nothing to reindex: {reason}",
        "reindex_cancelled": "Reindex of <b>{target}</b> was interrupted (the bot is stopping).",
        "stats": (
            "<b>Statistics</b>\n"
            "articles {articles} · passages {chunks}\n"
            "last index run: {last_run}\n"
            "questions today: {today}\n"
            "feedback: 👍 {up} · 👎 {down} ({ratio})\n"
            "answer latency today: p50 {p50} · p95 {p95}"
        ),
        "stats_memory_ready": "in memory: {chunks} passages ({mb} MB)",
        "stats_memory_loading": "in memory: loading (answers use Chroma and SQLite meanwhile)",
        "stats_memory_off": "in memory: off",
        "stats_memory_too_large": "in memory: off (more passages than DENSE_MATRIX_MAX_CHUNKS)",
        "stats_memory_failed": (
            "⚠️ in memory: loading failed (attempts: {failures}; {reason}); next try in {wait} s. "
            "Answers use Chroma and SQLite meanwhile."
        ),
        "stats_vectors": "vector store: {store}; reopens: {reopens}, last error: {reason}",
        "reindex_target_all": "all sources",
        "run_status_done": "done",
        "run_status_failed": "failed",
        "run_status_running": "running",
        "help_commands": "<b>Commands</b>",
        "help_admin": "<b>For admins</b>",
        "cmd_whoami": "Your Telegram id and this chat's (for ADMIN_IDS)",
        "cmd_forgetme": "Delete what I keep about you",
        "forgetme_done": (
            "Done: I deleted what I kept about you.\n"
            "• questions: {questions}\n"
            "• votes: {feedback}\n"
            "• saved answers (for <i>More</i>): {pages}\n"
            "• digests and their history: {digests}"
        ),
        "forgetme_other": "• other records: {other}",
        "forgetme_nothing": "I kept nothing about you: there was nothing to delete.",
        "forgetme_keep_days": (
            "New questions are kept {days} {days_word}, then deleted; /forgetme deletes them at once."
        ),
        "forgetme_keep_forever": (
            "New questions are kept until you send /forgetme again."
        ),
        "whoami": "Your Telegram id: <code>{user}</code>\nThis chat's id: <code>{chat}</code>",
        "whoami_admin": "You are an admin of this bot.",
        "whoami_not_admin": (
            "You are not an admin of this bot: the operator adds your id to ADMIN_IDS."
        ),
        "stats_no_run": "never",
        "stats_run": "{when} ({status}): +{added} ~{updated} -{removed}, {failed} failed",
        "word_failed_one": "failed",
        "word_failed_many": "failed",
        "word_attempt_one": "attempt",
        "word_attempt_many": "attempts",
        "word_day_one": "day",
        "word_day_many": "days",
        "stats_failing_none": "failing deliveries: none",
        "stats_failing_header": "<b>Failing deliveries</b> ({n}):",
        "stats_failing_item": (
            "• {chat}: {what}; failing since {since}, {attempts} {attempts_word}; last reason: "
            "<code>{reason}</code>"
        ),
        "stats_failing_more": "… and {n} more",
        "delivery_failing_notice": (
            "⚠️ <b>A delivery keeps failing</b>\n"
            "What: {what}\n"
            "Chat: {chat}\n"
            "Failed attempts: {attempts}, since {since}\n"
            "Last reason: <code>{reason}</code>\n"
            "I keep retrying and will not write again about this failure; /stats lists the "
            "deliveries still failing."
        ),
        "none": "—",
        "cmd_start": "What I know and how to ask",
        "cmd_help": "How to ask, with filters",
        "cmd_ask": "Ask a question (in groups)",
        "cmd_reindex": "Re-read the sources (admins)",
        "cmd_stats": "Usage statistics (admins)",
        "cmd_sources": "Health of every source (admins)",
    },
    "it": {
        "start": (
            "<b>Ciao! Rispondo alle domande su un archivio di notizie con i passaggi di "
            "articoli veri che rispondono</b>, citati parola per parola, con titolo, testata, "
            "data e link. Non scrivo mai testo mio."
        ),
        "corpus": (
            "Conosco <b>{articles}</b> articoli ({chunks} passaggi) in {languages}{range}."
        ),
        "corpus_range": ", pubblicati {p_from}{first} {p_to}{last}",
        "corpus_empty": "Per ora il mio archivio è vuoto.",
        "examples": "Prova a chiedere:",
        "how_private": "Qui basta scrivere la domanda.",
        "how_groups": (
            "Nei gruppi: <code>/ask la tua domanda</code>, menzionami o rispondi a un mio "
            "messaggio."
        ),
        "how_inline": (
            "In qualsiasi chat: scrivi <code>@{bot} la tua domanda</code> e scegli un passaggio."
        ),
        "help": (
            "<b>Come chiedere</b>\n"
            "Scrivi una domanda con parole tue, in italiano o in inglese. Rispondo con i "
            "passaggi che rispondono; <i>Altri</i> mostra i successivi, 👍/👎 mi dicono se "
            "sono stati utili.\n\n"
            "<b>Filtri</b> (facoltativi, in qualsiasi punto della domanda)\n"
            "• <code>fonte:reuters</code> — solo quella testata\n"
            "• <code>lingua:it</code> — solo articoli in quella lingua\n"
            "• <code>dal:2025-12-01</code>, <code>before:2025-11</code> — date di pubblicazione\n"
            "• funzionano anche le date a parole: <i>la settimana scorsa</i>, "
            "<i>a marzo 2024</i>, <i>ieri</i>"
        ),
        "ask_usage": "Scrivi la domanda dopo il comando, per esempio <code>/ask {example}</code>",
        "mention_usage": (
            "Chiedimi qualcosa dopo la menzione, per esempio <code>@{bot} {example}</code>"
        ),
        "rate_limited": (
            "Stai facendo domande più in fretta di quanto riesca a seguirti 🙂 Aspetta "
            "{seconds} s e riprova."
        ),
        "error": "Scusa, qualcosa è andato storto nel rispondere. Riprova tra un momento.",
        "button_more": "Altri ▸",
        "no_more": "Non ci sono altri passaggi per questa domanda.",
        "page_gone": "Questa risposta è troppo vecchia per continuare: rifai la domanda.",
        "more_shown": "I passaggi successivi sono già qui sotto.",
        "thanks_up": "Grazie! Felice di esserti stato utile.",
        "thanks_down": "Grazie, ne terrò conto.",
        "admin_only": "Scusa, questo comando è riservato agli amministratori del bot.",
        "reindex_usage": "Uso: <code>/reindex all</code> oppure <code>/reindex FONTE</code>. {sources}",
        "reindex_sources": "Fonti configurate: {names}.",
        "reindex_no_sources": (
            "Nessuna fonte configurata: <code>all</code> rilegge il campione incluso."
        ),
        "reindex_unknown": "Fonte sconosciuta <code>{name}</code>. {sources}",
        "reindex_busy": "C'è già una reindicizzazione in corso; ne pubblicherò il riepilogo alla fine.",
        "reindex_starting": "Reindicizzazione di <b>{target}</b>: avvio…",
        "reindex_loading": (
            "Reindicizzazione di <b>{target}</b>: lettura e pulizia degli articoli… ({elapsed})"
        ),
        "reindex_progress": (
            "Reindicizzazione di <b>{target}</b>\n"
            "articoli {done}/{total} · {rate:.1f} passaggi/s · fine stimata tra {eta}"
        ),
        "reindex_pruning": (
            "Reindicizzazione di <b>{target}</b>: rimozione degli articoli non più presenti…"
        ),
        "reindex_done": (
            "Reindicizzazione di <b>{target}</b> completata in {seconds:.1f} s\n"
            "aggiunti {added} · aggiornati {updated} · invariati {unchanged} · "
            "rimossi {removed} · falliti {failed}"
        ),
        "reindex_failures": "Primi errori:",
        "reindex_failed": "Reindicizzazione di <b>{target}</b> fallita: {reason}",
        "reindex_nothing": "Niente da reindicizzare: {reason}",
        "reindex_cancelled": (
            "Reindicizzazione di <b>{target}</b> interrotta (il bot si sta fermando)."
        ),
        "stats": (
            "<b>Statistiche</b>\n"
            "articoli {articles} · passaggi {chunks}\n"
            "ultima indicizzazione: {last_run}\n"
            "domande oggi: {today}\n"
            "valutazioni: 👍 {up} · 👎 {down} ({ratio})\n"
            "latenza delle risposte oggi: p50 {p50} · p95 {p95}"
        ),
        "stats_memory_ready": "in memoria: {chunks} passaggi ({mb} MB)",
        "stats_memory_loading": "in memoria: caricamento (intanto le risposte usano Chroma e SQLite)",
        "stats_memory_off": "in memoria: disattivata",
        "stats_memory_too_large": "in memoria: disattivata (più passaggi di DENSE_MATRIX_MAX_CHUNKS)",
        "stats_memory_failed": (
            "⚠️ in memoria: caricamento non riuscito (tentativi: {failures}; {reason}); nuovo "
            "tentativo tra {wait} s. Intanto le risposte usano Chroma e SQLite."
        ),
        "stats_vectors": "archivio vettori: {store}; riaperture: {reopens}, ultimo errore: {reason}",
        "reindex_target_all": "tutte le fonti",
        "run_status_done": "completata",
        "run_status_failed": "fallita",
        "run_status_running": "in corso",
        "help_commands": "<b>Comandi</b>",
        "help_admin": "<b>Per gli amministratori</b>",
        "cmd_whoami": "Il tuo id Telegram e quello di questa chat (per ADMIN_IDS)",
        "cmd_forgetme": "Cancella ciò che conservo su di te",
        "forgetme_done": (
            "Fatto: ho cancellato ciò che conservavo su di te.\n"
            "• domande: {questions}\n"
            "• voti: {feedback}\n"
            "• risposte salvate (per <i>Altri</i>): {pages}\n"
            "• rassegne e il loro storico: {digests}"
        ),
        "forgetme_other": "• altri dati: {other}",
        "forgetme_nothing": "Non conservavo nulla su di te: non c'era niente da cancellare.",
        "forgetme_keep_days": (
            "Le nuove domande sono conservate {days} {days_word}, poi cancellate; /forgetme le "
            "cancella subito."
        ),
        "forgetme_keep_forever": (
            "Le nuove domande sono conservate finché non invii di nuovo /forgetme."
        ),
        "whoami": "Il tuo id Telegram: <code>{user}</code>\nId di questa chat: <code>{chat}</code>",
        "whoami_admin": "Sei un amministratore di questo bot.",
        "whoami_not_admin": (
            "Non sei un amministratore di questo bot: chi lo gestisce aggiunge il tuo id ad "
            "ADMIN_IDS."
        ),
        "stats_no_run": "mai",
        "stats_run": "{when} ({status}): +{added} ~{updated} -{removed}, {failed} {failed_word}",
        "word_failed_one": "fallito",
        "word_failed_many": "falliti",
        "word_attempt_one": "tentativo",
        "word_attempt_many": "tentativi",
        "word_day_one": "giorno",
        "word_day_many": "giorni",
        "stats_failing_none": "consegne che falliscono: nessuna",
        "stats_failing_header": "<b>Consegne che falliscono</b> ({n}):",
        "stats_failing_item": (
            "• {chat}: {what}; fallisce {p_from}{since}, {attempts} {attempts_word}; ultimo motivo: "
            "<code>{reason}</code>"
        ),
        "stats_failing_more": "… e altre {n}",
        "delivery_failing_notice": (
            "⚠️ <b>Una consegna continua a fallire</b>\n"
            "Cosa: {what}\n"
            "Chat: {chat}\n"
            "Tentativi falliti: {attempts}, {p_from}{since}\n"
            "Ultimo motivo: <code>{reason}</code>\n"
            "Continuo a riprovare e non ne scriverò più per questo errore; /stats elenca le "
            "consegne che falliscono ancora."
        ),
        "none": "—",
        "cmd_start": "Cosa so e come chiedere",
        "cmd_help": "Come chiedere, con i filtri",
        "cmd_ask": "Fai una domanda (nei gruppi)",
        "cmd_reindex": "Rileggi le fonti (amministratori)",
        "cmd_stats": "Statistiche d'uso (amministratori)",
        "cmd_sources": "Stato di ogni fonte (amministratori)",
    },
}

EXAMPLES: dict[str, tuple[str, ...]] = {
    "en": (
        "Who is the new CEO of General Motors?",
        "What did the IAGS declare about Gaza?",
        "lang:it General Motors bankruptcy",
    ),
    "it": (
        "Chi è il nuovo amministratore delegato di General Motors?",
        "Cosa ha dichiarato la IAGS su Gaza?",
        "fonte:reuters cessate il fuoco a dicembre 2025",
    ),
}

LANGUAGE_NAMES: dict[str, dict[str, str]] = {
    "en": {"en": "English", "it": "Italian", "fr": "French", "de": "German", "es": "Spanish"},
    "it": {"en": "inglese", "it": "italiano", "fr": "francese", "de": "tedesco", "es": "spagnolo"},
}

AND = {"en": "and", "it": "e"}
