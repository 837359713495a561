"""Telling a person about failures that need one: delivery failures, dead-lettered jobs.

One ``Notifier`` per process, chosen by ``notify.kind``: ``log`` (an error log line, for collectors
that alert on it), ``webhook`` (a JSON POST, e.g. to a chat or incident tool) or ``smtp`` (an
e-mail through the standard library's ``smtplib``). A notification that cannot be sent is logged
and dropped: alerting must never fail or stall the work it reports on, and the failure itself
stays visible in the job table and the event list.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

import httpx
import structlog

from primebridge.config import NotifyConfig
from primebridge.domain.errors import ConfigError
from primebridge.ports import Notification, Notifier
from primebridge.runtime.jobs import ClaimedJob

log = structlog.get_logger(__name__)


class LogNotifier:
    def notify(self, notification: Notification) -> None:
        log.error("notify", kind=notification.kind, subject=notification.subject, text=notification.text,
                  **{k: v for k, v in notification.details.items() if k not in ("kind", "subject", "text")})


class WebhookNotifier:
    def __init__(self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def notify(self, notification: Notification) -> None:
        try:
            response = self._http.post(self.url, json=notification.as_json())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.error("notify.webhook_failed", kind=notification.kind, subject=notification.subject,
                      error=f"{type(exc).__name__}: {exc}")


class SmtpNotifier:
    def __init__(self, host: str, port: int, sender: str, recipients: list[str], *, username: str = "",
                 password: str | None = None, starttls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.username, self._password, self.starttls, self.timeout = username, password, starttls, timeout

    def notify(self, notification: Notification) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = f"[primebridge] {notification.subject}"
        details = "\n".join(f"{k}: {v}" for k, v in notification.details.items())
        message.set_content(f"{notification.text}\n\n{details}\n".strip() + "\n")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error("notify.smtp_failed", kind=notification.kind, subject=notification.subject,
                      error=f"{type(exc).__name__}: {exc}")


def build_notifier(cfg: NotifyConfig) -> Notifier:
    if cfg.kind == "webhook":
        if not cfg.webhook_url:
            raise ConfigError("notify.webhook_url must be set when notify.kind is webhook")
        return WebhookNotifier(cfg.webhook_url, timeout=cfg.timeout_seconds)
    if cfg.kind == "smtp":
        missing = [k for k in ("smtp_host", "smtp_from", "smtp_to") if not getattr(cfg, k)]
        if missing:
            raise ConfigError(", ".join(f"notify.{k}" for k in missing) + " must be set when notify.kind is smtp")
        assert cfg.smtp_host and cfg.smtp_from
        return SmtpNotifier(cfg.smtp_host, cfg.smtp_port, cfg.smtp_from, list(cfg.smtp_to),
                            username=cfg.smtp_username,
                            password=cfg.smtp_password.reveal() if cfg.smtp_password else None,
                            starttls=cfg.smtp_starttls, timeout=cfg.timeout_seconds)
    return LogNotifier()


def _replay_hint(job: ClaimedJob) -> str:
    """The command an operator runs once the cause is fixed: an Amazon event is replayed as an event
    (re-read and re-dispatched), any other job is retried."""
    event_row = job.payload.get("event_row_id") if isinstance(job.payload, dict) else None
    if event_row is not None:
        return f"primebridge events replay {event_row}"
    return f"primebridge jobs retry {job.id}"


class DeadLetterAlerts:
    """The worker's dead-letter hook: runs the registered callbacks (e.g. mark the Amazon event
    ``dead``), then raises a notification. Neither may break the worker."""

    def __init__(self, notifier: Notifier, callbacks: list[Any] | None = None) -> None:
        self.notifier = notifier
        self.callbacks = callbacks or []

    def dead_lettered(self, job: ClaimedJob, error: str) -> None:
        for callback in self.callbacks:
            try:
                callback(job, error)
            except Exception:
                log.exception("notify.dead_letter_callback_failed", job_id=job.id)
        try:
            self.notifier.notify(Notification(
                kind="dead_letter", subject=f"job {job.id} ({job.kind}) was dead-lettered",
                text=f"{error[:2000]}\n\nAfter fixing the cause: {_replay_hint(job)}",
                details={"job_id": job.id, "job_kind": job.kind, "ordering_key": job.ordering_key,
                         "attempts": job.attempts}))
        except Exception:
            log.exception("notify.failed", job_id=job.id)
