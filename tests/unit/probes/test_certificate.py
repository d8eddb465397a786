"""Reading a certificate's notAfter from its DER bytes."""

from __future__ import annotations

import datetime
import math
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from targets import CertificateAuthority

from vigild.probes.certificate import days_left, not_after


def at(stamp: str) -> datetime.datetime:
    """A UTC moment from ISO 8601 text: ``at("2031-05-17 08:30:15")``."""
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_der(certificate_authority: CertificateAuthority) -> bytes:
    return certificate_authority.issue("svc.test", not_after=at("2031-05-17 08:30:15")).der


# --- real certificates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expiry", "encoding"),
    [
        (at("2031-05-17 08:30:15"), b"\x17\x0d"),  # UTCTime, 2-digit year
        (at("2049-12-31 23:59:59"), b"\x17\x0d"),  # the last UTCTime year
        (at("2050-01-01"), b"\x18\x0f"),  # GeneralizedTime from 2050 on
        (at("2187-02-03 04:05:06"), b"\x18\x0f"),
        (at("9999-12-31 23:59:59"), b"\x18\x0f"),  # RFC 5280's "no expiry"
        (at("1999-07-01 12:00:00"), b"\x17\x0d"),  # 99 is 1999, not 2099
    ],
)
def test_reads_not_after_of_generated_certificates(
    certificate_authority: CertificateAuthority, expiry: datetime.datetime, encoding: bytes
) -> None:
    der = certificate_authority.issue("svc.test", not_after=expiry, not_before=at("1990-01-01")).der
    # The time is encoded as the case says (tag and length in front of its text).
    stamp = expiry.strftime("%y%m%d%H%M%SZ" if encoding[0] == 0x17 else "%Y%m%d%H%M%SZ")
    assert encoding + stamp.encode() in der
    assert not_after(der) == expiry.timestamp()


def test_reads_a_certificate_with_a_long_issuer_and_serial(
    certificate_authority: CertificateAuthority,
) -> None:
    # Long-form lengths (0x82 ....) throughout: a 2 KiB certificate.
    names = [f"host-{i:03d}.example.test" for i in range(60)]
    issued = certificate_authority.issue(*names, not_after=at("2030-01-02 03:04:05"))
    assert len(issued.der) > 1024
    assert not_after(issued.der) == at("2030-01-02 03:04:05").timestamp()


def test_days_left_is_fractional_and_negative_once_expired() -> None:
    expiry = at("2030-01-11").timestamp()
    assert days_left(expiry, at("2030-01-01").timestamp()) == 10.0
    assert days_left(expiry, at("2030-01-10 12:00:00").timestamp()) == 0.5
    assert days_left(expiry, at("2030-01-12").timestamp()) == -1.0


# --- hand-made DER: the walk's edges ---------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def certificate(expiry: bytes, *, version: bool = True) -> bytes:
    """The smallest DER the walk accepts, with ``expiry`` as the notAfter element."""
    validity = tlv(0x30, tlv(0x17, b"200101000000Z") + expiry)
    tbs = (
        (tlv(0xA0, tlv(0x02, b"\x02")) if version else b"")
        + tlv(0x02, b"\x01\x23")
        + tlv(0x30, tlv(0x06, b"\x2a\x86\x48\xce\x3d\x04\x03\x02"))
        + tlv(0x30, b"")
        + validity
        + tlv(0x30, b"")
    )
    return tlv(0x30, tlv(0x30, tbs) + tlv(0x30, b"") + tlv(0x03, b"\x00"))


def test_version_is_optional() -> None:
    expiry = at("2030-06-01").timestamp()
    assert not_after(certificate(tlv(0x17, b"300601000000Z"), version=False)) == expiry
    assert not_after(certificate(tlv(0x17, b"300601000000Z"))) == expiry


def test_fractional_seconds_of_old_issuers_are_accepted() -> None:
    der = certificate(tlv(0x18, b"20300601000000.123Z"))
    assert not_after(der) == at("2030-06-01").timestamp()


@pytest.mark.parametrize(
    ("der", "reason"),
    [
        (b"", "no certificate"),
        (b"\x30", "truncated"),
        (b"\x30\x05\x30\x03\x02\x01", "truncated"),
        (b"\x30\x80\x00\x00", "invalid length"),  # BER indefinite length
        (b"\x30\x85\x00\x00\x00\x00\x01\x00", "invalid length"),
        (b"\x1f\x81\x01\x00", "multi-byte tag"),
        (b"\x04\x00", "unexpected tag 0x04 for certificate"),
        (certificate(tlv(0x17, b"300601000000Z")) + b"\x00", "trailing bytes"),
        (certificate(tlv(0x02, b"\x01")), "unexpected tag 0x02 for notAfter"),
        (certificate(tlv(0x17, b"3006010000Z")), "not a UTC UTCTime"),  # no seconds
        (certificate(tlv(0x17, b"300601000000+0100")), "not a UTC UTCTime"),
        (certificate(tlv(0x18, b"300601000000Z")), "not a UTC GeneralizedTime"),
        (certificate(tlv(0x17, b"30\xd9\xa1601000000Z")), "not a UTC UTCTime"),
        (certificate(tlv(0x17, b"300230000000Z")), "not a valid date"),  # 30 February
        (certificate(tlv(0x18, b"00000101000000Z")), "not a valid date"),  # year 0
        (certificate(tlv(0x17, b"301301000000Z")), "not a valid date"),
    ],
)
def test_malformed_input_is_a_value_error_with_a_reason(der: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        not_after(der)


def test_a_field_running_past_its_container_is_rejected() -> None:
    der = bytearray(certificate(tlv(0x17, b"300601000000Z")))
    validity = der.index(tlv(0x30, tlv(0x17, b"200101000000Z") + tlv(0x17, b"300601000000Z")))
    der[validity + 1] = 0x7F  # longer than the tbsCertificate it sits in
    with pytest.raises(ValueError, match="runs past its container"):
        not_after(bytes(der))


# --- fuzzing: nothing but ValueError ever escapes ---------------------------------


def assert_reads_or_refuses(der: bytes) -> None:
    try:
        seconds = not_after(der)
    except ValueError as exc:
        assert str(exc)  # a reason, never an empty message
    else:
        assert math.isfinite(seconds)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_value_error(der: bytes) -> None:
    assert_reads_or_refuses(der)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_certificates_raise_only_value_error(
    sample_der: bytes, data: st.DataObject
) -> None:
    der = bytearray(sample_der)
    # One draw of all the changes: drawing each apart took twice as long.
    changes = st.tuples(st.integers(0, len(der) - 1), st.integers(0, 255))
    for where, byte in data.draw(st.lists(changes, min_size=1, max_size=8)):
        der[where] = byte
    assert_reads_or_refuses(bytes(der))


def test_every_truncation_is_a_value_error(sample_der: bytes) -> None:
    for cut in range(len(sample_der)):  # all of them: a few hundred take a millisecond
        with pytest.raises(ValueError):
            not_after(sample_der[:cut])
