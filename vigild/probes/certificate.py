"""A certificate's expiry, read from its DER bytes.

``SSLObject.getpeercert()`` decodes the certificate only when it was
verified; with ``tls_verify = false`` it returns ``{}``. The DER bytes are
always there, so this module reads ``notAfter`` from them itself: a short,
bounds-checked walk down to the validity field, with no dependency beyond
the standard library. Anything it does not understand is a ``ValueError``.

    Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
                                  issuer, validity, ... }
    Validity     ::= SEQUENCE { notBefore Time, notAfter Time }
    Time         ::= UTCTime | GeneralizedTime
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["days_left", "not_after"]

_SEQUENCE = 0x30
_INTEGER = 0x02
_VERSION = 0xA0  # [0] EXPLICIT, constructed
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18

_DAY = 86400.0

# DER fixes both forms to UTC ("Z") with seconds (RFC 5280 4.1.2.5). Fractional
# seconds are forbidden there too, but a few old issuers wrote them; they do not
# change the day count, so they are accepted and dropped.
_UTC_TIME_TEXT = re.compile(rb"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z")
_GENERALIZED_TIME_TEXT = re.compile(
    rb"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:\.[0-9]+)?Z"
)


def not_after(der: bytes) -> float:
    """The certificate's ``notAfter`` as unix seconds.

    Raises ValueError, with the reason, for bytes that are not a certificate
    as far as this walk goes.
    """
    if not der:
        raise ValueError("no certificate")
    certificate = memoryview(der)
    tag, body, end = _element(certificate, 0, len(certificate), "certificate")
    _expect(tag, _SEQUENCE, "certificate")
    if end != len(certificate):
        raise ValueError("trailing bytes after the certificate")
    tag, start, tbs_end = _element(certificate, body, end, "tbsCertificate")
    _expect(tag, _SEQUENCE, "tbsCertificate")

    tag, content, after = _element(certificate, start, tbs_end, "version or serial number")
    if tag == _VERSION:
        tag, content, after = _element(certificate, after, tbs_end, "serial number")
    _expect(tag, _INTEGER, "serial number")
    for field in ("signature algorithm", "issuer"):
        tag, content, after = _element(certificate, after, tbs_end, field)
        _expect(tag, _SEQUENCE, field)
    tag, validity, validity_end = _element(certificate, after, tbs_end, "validity")
    _expect(tag, _SEQUENCE, "validity")

    _, _, after = _element(certificate, validity, validity_end, "notBefore")
    tag, content, end = _element(certificate, after, validity_end, "notAfter")
    return _time(tag, certificate[content:end].tobytes())


def days_left(not_after: float, now: float) -> float:
    """Fractional days from ``now`` to ``not_after``; negative once it has expired."""
    return (not_after - now) / _DAY


def _element(data: memoryview, at: int, limit: int, what: str) -> tuple[int, int, int]:
    """One DER element at ``at`` that must end by ``limit``: (tag, content start, end)."""
    if at + 2 > limit:
        raise ValueError(f"truncated certificate: no room for {what}")
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError(f"unexpected multi-byte tag for {what}")
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite length, which DER forbids; four bytes already
        # allow 4 GiB, more than any certificate.
        if count == 0 or count > 4:
            raise ValueError(f"invalid length encoding for {what}")
        if at + count > limit:
            raise ValueError(f"truncated certificate: length of {what}")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    end = at + length
    if end > limit:
        raise ValueError(f"truncated certificate: {what} runs past its container")
    return tag, at, end


def _expect(tag: int, wanted: int, what: str) -> None:
    if tag != wanted:
        raise ValueError(f"unexpected tag 0x{tag:02x} for {what} (expected 0x{wanted:02x})")


def _time(tag: int, text: bytes) -> float:
    if tag == _UTC_TIME:
        match = _UTC_TIME_TEXT.fullmatch(text)
        kind = "UTCTime"
    elif tag == _GENERALIZED_TIME:
        match = _GENERALIZED_TIME_TEXT.fullmatch(text)
        kind = "GeneralizedTime"
    else:
        raise ValueError(f"unexpected tag 0x{tag:02x} for notAfter (expected a time)")
    if match is None:
        raise ValueError(f"notAfter is not a UTC {kind}: {text[:32]!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if tag == _UTC_TIME:
        year += 1900 if year >= 50 else 2000  # RFC 5280: YY >= 50 is 19YY
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # month 13, February 30, year 0
        raise ValueError(f"notAfter is not a valid date: {exc}") from None
    return moment.timestamp()
