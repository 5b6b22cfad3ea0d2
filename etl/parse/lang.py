"""An offline language guess: the script of the letters, then stop-word profiles.

No model file, no download: scripts that belong to one language (Greek, Hebrew, Thai, Korean
Hangul, Japanese kana, Armenian, Georgian) decide at once; Han without kana is Chinese;
Cyrillic and Latin text is scored by the share of its words found in each language's most
frequent function words. Good enough to route and filter pages; not a replacement for a
trained identifier on short or mixed text, where it answers None rather than guess.
"""

from __future__ import annotations

import re
from collections import Counter

STOP_WORDS = {
    "en": "the of and to in is that for it with as was on be by this are or at from not have an which but you",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus",
    "fr": "de la le et les des en un du une que est pour qui dans par plus pas au sur ne se sont avec il cette",
    "es": "de la que el en y a los del se las por un para con no una su al es lo como más pero sus le ya",
    "it": "di e il la che in a per un è del non sono della con le si da una gli al lo dei ha come più",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao ele",
    "nl": "de van het een en in is dat op te zijn voor met die niet aan er om ook als dan maar bij of uit",
    "sv": "och i att det som en på är av för med till den har de inte om ett men var sig så kan",
    "da": "og i at det er en til på som de med han af for ikke der var mig sig men et har om",
    "no": "og i det er som på en til av for at med har de ikke den var om et men kan fra seg",
    "pl": "i w na z się nie do to że jest o jak po co ale tak dla od są przez czy jego lub już",
    "cs": "a v se na je že to s z o do i jako pro by ale jsou jeho které podle až byl tak také",
    "tr": "ve bir bu da de için ile olarak çok daha gibi en kadar ne o var ama sonra her olan",
    "id": "yang dan di ini itu dengan untuk dari dalam tidak akan pada ke juga ada oleh atau saya bisa",
    "ro": "de și în a la cu nu o să din pe un care ce este sa mai fi au pentru sunt iar",
    "hu": "a az és hogy nem is egy de meg van csak már el ha mint ez volt még azt kell",
    "fi": "ja on ei se että oli hän ovat mutta kun myös tai kuin joka mitä niin ole sen",
    "ru": "и в не на что я с он как а то все это по но из у за от же так его для мы",
    "uk": "і в на що не з до у як та це за він я є від але по так його про ми або",
    "bg": "и на в да е се за от с не че по са това като по-да ще които но той",
}
_PROFILES = {lang: frozenset(words.split()) for lang, words in STOP_WORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_SCRIPTS = (  # (pattern, language) for scripts that name their language
    (re.compile(r"[\u3040-\u30ff]"), "ja"), (re.compile(r"[\uac00-\ud7af]"), "ko"),
    (re.compile(r"[\u0370-\u03ff]"), "el"), (re.compile(r"[\u0590-\u05ff]"), "he"),
    (re.compile(r"[\u0e00-\u0e7f]"), "th"), (re.compile(r"[\u0530-\u058f]"), "hy"),
    (re.compile(r"[\u10a0-\u10ff]"), "ka"),
)
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_DEVANAGARI = re.compile(r"[\u0900-\u097f]")


def detect_language(text: str, sample_chars: int = 3000, min_words: int = 8) -> str | None:
    """ISO 639-1 code of ``text``'s language, or None when too short or unsure."""
    sample = text[:sample_chars]
    letters = len(_NOT_LETTER.sub("", sample))
    if letters < 20:
        return None
    for pattern, lang in _SCRIPTS:
        if len(pattern.findall(sample)) * 5 >= letters:
            return lang
    if len(_HAN.findall(sample)) * 3 >= letters:
        return "zh"
    if len(_ARABIC.findall(sample)) * 3 >= letters:
        return "ar"
    if len(_DEVANAGARI.findall(sample)) * 3 >= letters:
        return "hi"
    words = _WORD.findall(sample.lower())
    if len(words) < min_words:
        return None
    counts = Counter(words)
    best, best_hits, second = None, 0, 0
    for lang, profile in _PROFILES.items():
        hits = sum(counts[w] for w in profile if w in counts)
        if hits > best_hits:
            best, best_hits, second = lang, hits, best_hits
        elif hits > second:
            second = hits
    # Too few function words (a list of names, code) or a near tie: no answer.
    if best_hits < max(2, 0.05 * len(words)) or best_hits < 1.2 * second:
        return None
    return best
