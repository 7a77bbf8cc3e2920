"""Small word lists per language for the digest: stop words and abbreviations.

Stop words are left out of the digest's sentence vectors, so that "the" and "der" do not
make two sentences look alike; abbreviations end in a dot that does not end a sentence.
The lists are short on purpose: the most frequent function words carry nearly all of the
noise, and a language without a list still works (every word counts).
"""

from __future__ import annotations

_EN = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself
"""

_DE = """
aber alle allem allen aller alles als also am an ander andere anderen auch auf aus bei bin
bis bist da damit dann das dass dein deine dem den denn der des dessen deshalb die dies
diese diesem diesen dieser dieses doch dort du durch ein eine einem einen einer eines er es
euer eure für gegen hat hatte hätte hier hin hinter ich ihr ihre im in ist ja jede jedem
jeden jeder jedes jetzt kann kein keine mit muss nach nicht noch nun nur ob oder ohne sehr
sein seine sich sie sind so soll sondern über um und uns unser unter vom von vor war waren
warum was weil welche welcher wenn wer werden wie wir wird wo zu zum zur
"""

_FR = """
à au aux avec ce ces cette dans de des du elle elles en est et étaient était être eu il ils
je la le les leur leurs lui ma mais me même mes moi mon ne nos notre nous on ont ou où par pas
pour qu que qui sa se ses si son sont sur ta te tes toi ton tu un une vos votre vous y a été
aussi comme donc plus tout tous très
"""

_ES = """
a al algo como con contra cual cuando de del desde donde durante e el ella ellas ellos en
entre era es esa ese eso esta este esto estos fue ha hay la las le les lo los más me mi muy
nada ni no nos o os otra otro para pero poco por porque que quien se ser si sin sobre son su
sus también te tiene todo todos tu un una uno unos y ya
"""

_PL = """
a aby ale albo bez bo był była było były być by co czy dla do go gdy gdzie i ich im jak jako
jej jest jeszcze jego już ku lub ma mi mnie może na nad nie nich nim niż o od oraz po pod
przed przez przy się są ta tak także tam te tego tej ten też to tu tylko tym w we więc z za
ze że żeby
"""

STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(_EN.split()),
    "de": frozenset(_DE.split()),
    "fr": frozenset(_FR.split()),
    "es": frozenset(_ES.split()),
    "pl": frozenset(_PL.split()),
}

# Lower-case, without their final dot. Single letters ("z. B.", "J. R. R.") are handled
# by the splitter for every language.
_ABBREVIATIONS: dict[str, str] = {
    "en": "mr mrs ms dr prof sr jr st vs etc inc ltd co corp e.g i.e approx no fig jan feb mar"
    " apr jun jul aug sep sept oct nov dec",
    "de": "dr prof bzw ca usw vgl evtl ggf inkl bspw nr str abs jh jhd mio mrd z.b d.h u.a s.o u.ä",
    "fr": "m mme mlle dr pr etc cf env av apr j.-c n°",
    "es": "sr sra srta dr dra ud uds etc p.ej aprox núm",
    "pl": "dr prof inż mgr np tj tzn itd itp ok ul al godz",
}

ABBREVIATIONS: dict[str, frozenset[str]] = {
    language: frozenset(words.split()) for language, words in _ABBREVIATIONS.items()
}

# Languages that write ordinals with a dot ("3. Oktober", "1. stycznia"): a short number
# before a dot does not end a sentence.
ORDINAL_DOT = frozenset({"de", "pl", "cs", "sk", "da", "no", "nb", "fi", "hu", "sl", "hr"})


def language_root(language: str | None) -> str:
    """ "de-AT" and "de_AT" -> "de"; None or blank -> "en"."""
    root = (language or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return root or "en"


def stop_words(language: str | None) -> frozenset[str]:
    return STOP_WORDS.get(language_root(language), frozenset())


def abbreviations(language: str | None) -> frozenset[str]:
    return ABBREVIATIONS.get(language_root(language), frozenset())
