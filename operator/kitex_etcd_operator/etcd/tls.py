"""Checks of TLS material before it is used, for errors a person can act on.

gRPC reports a server that rejects our client certificate as "Unwrap failed
(TSI_DATA_CORRUPTED)". Checking the certificate's dates ourselves turns the
commonest cause, an expired certificate, into a sentence that says so.
"""

from __future__ import annotations

import datetime

from .errors import EtcdCertificateExpired, EtcdTLSError


def check_client_certificate(cert_pem: bytes, *, now: datetime.datetime | None = None) -> None:
    """Raise ``EtcdTLSError`` for a certificate that cannot be parsed or is out of its dates."""
    # Imported here: 11 MiB that an operator without a client certificate never needs.
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise EtcdTLSError(f"the etcd client certificate is not a PEM certificate: {exc}") from None
    moment = now or datetime.datetime.now(datetime.UTC)
    subject = cert.subject.rfc4514_string() or "(no subject)"
    if moment > cert.not_valid_after_utc:
        raise EtcdCertificateExpired(
            f"client certificate expired: the etcd client certificate {subject} expired at "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; etcd will refuse it, put a "
            "valid tls.crt and tls.key in its place")
    if moment < cert.not_valid_before_utc:
        raise EtcdCertificateExpired(
            f"client certificate not yet valid: the etcd client certificate {subject} is not "
            f"valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC (is the clock "
            "right?)")
