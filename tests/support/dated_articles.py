"""Articles published today, yesterday and long ago in Rome, for the date tests (search and bot)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 12, 2, 15, 0, tzinfo=ROME)

BILANCIO = (
    "Il consiglio comunale di Milano ha approvato il bilancio 2027 dopo una seduta durata "
    "tutta la notte. Il sindaco ha detto che i fondi per il trasporto pubblico crescono del "
    "dieci per cento. L'opposizione ha votato contro e ha annunciato un ricorso al tribunale "
    "amministrativo."
)
ARTICLES = [
    # -- 2 December 2026 in Rome: five articles, four stories ------------------------------
    {"id": "today-bilancio", "lang": "it", "source": "ANSA", "url": "https://ansa.example/b",
     "published": "2026-12-02T09:00:00+01:00", "title": "Milano approva il bilancio 2027",
     "text": BILANCIO},
    {"id": "today-bilancio-copy", "lang": "it", "source": "Corriere Locale",
     "url": "https://corriere.example/b", "published": "2026-12-02T11:00:00+01:00",
     "title": "Bilancio, via libera dal consiglio comunale",
     "text": "Di Redazione\n\n" + BILANCIO},
    # 00:30 in Rome on 2 December is still 1 December in UTC.
    {"id": "today-0030", "lang": "it", "source": "La Stampa", "url": "https://stampa.example/f",
     "published": "2026-12-01T23:30:00Z", "title": "Incendio nella notte a Torino",
     "text": "Un incendio è scoppiato nella notte in un deposito di legname alla periferia di "
     "Torino. I vigili del fuoco hanno lavorato per ore per spegnere le fiamme. Nessuno è "
     "rimasto ferito, ma la strada provinciale è rimasta chiusa fino al mattino."},
    {"id": "today-ecb", "lang": "en", "source": "Reuters", "url": "https://reuters.example/ecb",
     "published": "2026-12-02T10:00:00Z", "title": "ECB keeps rates unchanged",
     "text": "The European Central Bank kept interest rates unchanged on Wednesday, citing "
     "easing inflation across the euro area. Its president said further cuts would depend on "
     "wage data. Markets in Frankfurt and Paris rose slightly after the announcement."},
    {"id": "today-neve", "lang": "it", "source": "Il Meteo", "url": "https://meteo.example/n",
     "published": "2026-12-02T13:00:00+01:00", "title": "Prima neve sulle Dolomiti",
     "text": "La prima neve della stagione è caduta sulle Dolomiti, con trenta centimetri a "
     "Cortina. Gli impianti di risalita apriranno sabato, una settimana prima del previsto. "
     "I gestori dei rifugi parlano di un inizio d'inverno eccezionale."},
    # -- 1 December 2026 in Rome -----------------------------------------------------------
    {"id": "yest-porto", "lang": "it", "source": "Il Secolo", "url": "https://secolo.example/p",
     "published": "2026-12-01T10:00:00Z", "title": "Record di container a Genova",
     "text": "Il porto di Genova ha registrato un record di container nel mese di novembre. "
     "L'autorità portuale attribuisce la crescita ai nuovi collegamenti con l'Asia. I "
     "sindacati chiedono più personale sulle banchine."},
    # 00:30 in Rome on 1 December: 30 November in UTC.
    {"id": "yest-0030", "lang": "it", "source": "ANSA", "url": "https://ansa.example/v",
     "published": "2026-11-30T23:30:00Z", "title": "Pallavolo, l'Italia vince a Tokyo",
     "text": "La nazionale di pallavolo femminile ha vinto il torneo di Tokyo battendo il "
     "Brasile in cinque set. La capitana ha dedicato la vittoria ai tifosi rimasti svegli in "
     "Italia. La squadra rientrerà a Roma giovedì."},
    # -- 2008: the words "oggi", "ieri", "today", "yesterday" again and again ------------------
    {"id": "old-oggi", "lang": "it", "source": "Borsa News", "url": "https://borsa.example/o",
     "published": "2008-10-10T09:00:00Z", "title": "Oggi la borsa crolla, come ieri",
     "text": "Oggi la borsa di Milano ha perso il cinque per cento. Oggi i titoli delle banche "
     "sono crollati ancora. Gli analisti dicono che oggi è il giorno peggiore dell'anno e che "
     "ieri il mercato aveva già perso molto. Oggi, come ieri, gli investitori vendono tutto. "
     "Ieri sera il governo ha promesso aiuti, ma oggi nessuno ci crede."},
    {"id": "old-today", "lang": "en", "source": "Markets Daily", "url": "https://md.example/t",
     "published": "2008-10-10T20:00:00Z", "title": "Today stocks fall again, as yesterday",
     "text": "Today stocks fell sharply on Wall Street. Today bank shares lost a fifth of their "
     "value. Traders said today was the worst day since 1987, and yesterday had already been "
     "bad. Yesterday the government promised help; today nobody believed it. What is new "
     "today is the fear."},
]
TODAY = {"today-bilancio", "today-bilancio-copy", "today-0030", "today-ecb", "today-neve"}
YESTERDAY = {"yest-porto", "yest-0030"}
OLD = {"old-oggi", "old-today"}
