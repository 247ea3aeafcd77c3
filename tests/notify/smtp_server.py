"""A real SMTP server (aiosmtpd) on 127.0.0.1 for email tests, with TLS, AUTH and scripted refusals.

    cert = make_certificate(tmp_path)                  # self-signed, for 127.0.0.1 and localhost
    with SmtpServer(security="starttls", cert=cert, users={"watcher": "pw"}) as smtp:
        smtp.refuse("RCPT", "550 5.1.1 no such user")    # the next RCPT TO answers 550
        ...
        [message] = smtp.messages                        # Received: envelope + parsed message

``security`` is ``none`` (plain), ``starttls`` (STARTTLS offered and required before MAIL and AUTH)
or ``tls`` (implicit TLS from the first byte). With ``users``, AUTH is required to send.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost (it is its own CA: pass ``cert``
    as ``ca_certs`` to trust it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / "smtp-cert.pem", folder / "smtp-key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None  # the user that authenticated, if any
    encrypted: bool

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SmtpServer:
    """aiosmtpd in a thread on 127.0.0.1, on a port chosen by the OS. Use as a context manager."""

    def __init__(
        self,
        security: Literal["none", "starttls", "tls"] = "none",
        cert: Certificate | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.security = security
        self.messages: list[Received] = []
        self.logins: list[tuple[str, str]] = []  # every AUTH attempt (user, password)
        self._users = users
        self._refusals: dict[str, list[str]] = {"RCPT": [], "DATA": [], "MAIL": []}
        self._lock = threading.Lock()
        context = None
        if security != "none":
            assert cert is not None, "TLS needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert.cert, cert.key)
        kwargs: dict[str, Any] = {}
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if users is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=security == "starttls"
            )
        self._controller = _Controller(
            _Handler(self),
            hostname="127.0.0.1",
            ssl_context=context if security == "tls" else None,
            server_hostname="localhost",
            **kwargs,
        )

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def refuse(self, command: Literal["MAIL", "RCPT", "DATA"], reply: str, times: int = 1) -> None:
        """The next ``times`` ``command``s answer ``reply`` (e.g. ``"451 4.3.0 try later"``)."""
        with self._lock:
            self._refusals[command] += [reply] * times

    def refusal(self, command: str) -> str | None:
        with self._lock:
            queue = self._refusals[command]
            return queue.pop(0) if queue else None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        with self._lock:
            self.logins.append((user, password))
        ok = self._users is not None and self._users.get(user) == password
        # handled=False: aiosmtpd answers the failure itself (535); True would leave the client waiting.
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    # aiosmtpd finds its hooks by these names.
    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        refusal = self._server.refusal("MAIL")
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        refusal = self._server.refusal("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        refusal = self._server.refusal("DATA")
        if refusal:
            return refusal
        encrypted = self._server.security == "tls" or bool(session.ssl)
        received = Received(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.auth_data, encrypted
        )
        self._server.messages.append(received)
        return "250 Message accepted"


class _Controller(Controller):  # type: ignore[misc]
    """aiosmtpd's controller, listening on a port the OS picks (it wants a fixed one)."""

    def _create_server(self) -> Awaitable[Any]:
        async def create() -> Any:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()
