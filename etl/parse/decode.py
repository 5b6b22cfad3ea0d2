"""Bytes to text for HTML bodies, never failing on bad bytes.

The charset comes from a byte-order mark (it cannot be wrong), the HTTP ``Content-Type``, a
``<meta charset>`` / http-equiv in the first 4 KiB, then UTF-8, then cp1252 (which maps every
byte), so a wrong declaration or invalid bytes still give text.
"""

from __future__ import annotations

import codecs
import re

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# Labels whose real-world meaning is a superset (the WHATWG encoding standard's mapping).
_SUPERSETS = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
              "iso-8859-9": "cp1254", "tis-620": "cp874", "iso-8859-11": "cp874",
              "x-sjis": "shift_jis", "ks_c_5601-1987": "cp949", "euc-kr": "cp949"}


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when the label is unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page cannot really be UTF-16 once it was read as ASCII-compatible text (WHATWG).
    return "utf-8" if name.startswith("utf-16") else name


def charset_from_content_type(content_type: str | None) -> str | None:
    m = _HEADER_CHARSET.search(content_type or "")
    return m.group(1) if m else None


_MULTIBYTE = ("gb18030", "gbk", "big5", "shift_jis", "euc_jp", "iso2022", "cp949", "euc_kr", "cp932", "hz",
              "big5hkscs", "utf")


def _is_multibyte(codec: str) -> bool:
    return codec.startswith(_MULTIBYTE)


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode an HTML body; returns (text, codec used). Never raises on bad bytes.

    Order: a byte-order mark (it cannot be wrong); then bytes that are valid UTF-8 with
    non-ASCII in them are UTF-8 whatever a single-byte declaration says (multi-byte UTF-8
    sequences do not happen by chance in legacy text, while servers mislabel UTF-8 pages as
    latin-1 often); then the HTTP Content-Type charset, a ``<meta charset>`` / http-equiv in
    the first 4 KiB, then UTF-8, then cp1252. A declared charset that fails on a few bytes is
    kept with U+FFFD replacements; one that fails badly gives way to cp1252.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace"), codec
    declared = _codec(charset_from_content_type(content_type))
    if declared is None:
        m = _META_CHARSET.search(body[:4096])
        declared = _codec(m.group(1).decode("ascii", "replace")) if m else None
    if declared is not None and declared != "utf-8" and not body.isascii() and not _is_multibyte(declared):
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    for codec in dict.fromkeys(c for c in (declared, "utf-8") if c):
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError:
            continue
    if declared and declared != "utf-8":
        text = body.decode(declared, errors="replace")
        if text.count("\ufffd") * 100 <= len(text):
            return text, declared
    return body.decode("cp1252", errors="replace"), "cp1252"


