"""SMS text rules: GSM-7 vs UCS-2 segment counting and the mandatory STOP mention (France).

GSM 03.38: a message written only with the GSM-7 basic set (extension characters count
double) fits 160 characters in one SMS, 153 per segment when concatenated; any other character
switches the whole message to UCS-2: 70 in one SMS, 67 per segment (counted in UTF-16 units).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSegments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # characters counted (GSM-7 septets or UTF-16 code units)
    segments: int
    per_segment: int

    def __str__(self) -> str:
        return f"{self.encoding}: {self.units} / {self.segments} SMS"


def sms_segments(text: str) -> SmsSegments:
    """How many SMS ``text`` costs, and in which encoding."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsSegments(encoding, units, 1 if units else 0, single)
    return SmsSegments(encoding, units, -(-units // multi), multi)


def with_stop_mention(body: str, *, marketing: bool) -> str:
    """Append the configured STOP mention to a marketing SMS that lacks it (CNIL / FFT rules)."""
    mention = settings.SMS_STOP_MENTION.strip()
    if not marketing or not mention or mention.lower() in body.lower():
        return body
    return f"{body.rstrip()}\n{mention}"
